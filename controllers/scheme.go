package controllers

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

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
