// Package kube links a room server to its own Room object when it runs in Kubernetes: it
// reports the room's live figures on the Room's status and applies live spec changes
// (syncInterval, maxClients, rules) to the running room.
//
// It acts only as the pod's own ServiceAccount, whose Role allows reading this one Room and
// patching its status (resourceNames). Status goes through server-side apply under its own
// field manager, so the operator's fields and the server's never fight. Outside a cluster
// (no in-cluster config and no KUBECONFIG) Config returns ErrStandalone and the server runs
// on its own.
package kube
