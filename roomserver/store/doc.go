// Package store keeps a room's entities between restarts of its room server, and the last
// components of users who left, so a user who refreshes the page can resume where they were.
//
// Store is the contract; Bolt is the durable implementation (one bbolt file per room) and
// Memory the one for tests. Both are safe for concurrent use, and both accept exactly the
// same input, so a test against Memory says something about Bolt. The room loop commits one
// Change per flush, in flush order, and seeds a new room's store with Seed.
package store
