package devcluster

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// collector is a small stand-in for Kubernetes' garbage collector, limited to what a Room
// owns: when a Room is gone, it deletes the objects whose owner references name it.
type collector struct {
	Client client.Client
}

func (c *collector) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("garbage-collector").For(&xroomsv1alpha1.Room{}).Complete(c)
}

// owned lists the kinds a Room owns.
func owned() []client.ObjectList {
	return []client.ObjectList{
		&corev1.PodList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}, &corev1.ServiceAccountList{},
		&corev1.PersistentVolumeClaimList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
	}
}

func (c *collector) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var room xroomsv1alpha1.Room
	err := c.Client.Get(ctx, req.NamespacedName, &room)
	if err == nil || !apierrors.IsNotFound(err) {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	for _, list := range owned() {
		if err := c.Client.List(ctx, list, client.InNamespace(req.Namespace)); err != nil {
			return ctrl.Result{}, err
		}
		objs, err := metaItems(list)
		if err != nil {
			return ctrl.Result{}, err
		}
		for _, o := range objs {
			if ownedBy(o, req.Name) {
				bg := metav1.DeletePropagationBackground
				if err := c.Client.Delete(ctx, o, &client.DeleteOptions{PropagationPolicy: &bg}); client.IgnoreNotFound(err) != nil {
					return ctrl.Result{}, err
				}
			}
		}
	}
	return ctrl.Result{}, nil
}

func ownedBy(o client.Object, room string) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.Kind == "Room" && ref.APIVersion == xroomsv1alpha1.GroupVersion.String() && ref.Name == room {
			return true
		}
	}
	return false
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, 0, len(items))
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			out = append(out, o)
		}
	}
	return out, nil
}
