package controllers

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
)

// NewScheme returns the scheme the operator works with: the built-in kinds and Room.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := xroomsv1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Setup registers the Room controller with a manager, wired as the operator runs it: the
// manager's cached client and direct reader, its event recorder, the real clock.
// roomServerImage is the image of Rooms without spec.image ("": DefaultRoomServerImage).
func Setup(mgr ctrl.Manager, roomServerImage string) error {
	if roomServerImage == "" {
		roomServerImage = DefaultRoomServerImage
	}
	r := &RoomReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorder("xrooms-controller"),
		Clock:           clock.RealClock{},
		RoomServerImage: roomServerImage,
	}
	return r.SetupWithManager(mgr)
}
