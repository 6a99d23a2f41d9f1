package kube

import (
	xroomsv1alpha1 "github.com/xrooms/xrooms/api/v1alpha1"
	"github.com/xrooms/xrooms/roomserver/rules"
)

// RulesOf converts a Room's spec.rules into the room server's rule declarations (nil for
// none), so the rules package stays free of Kubernetes types.
func RulesOf(room *xroomsv1alpha1.Room) []rules.Decl {
	if len(room.Spec.Rules) == 0 {
		return nil
	}
	out := make([]rules.Decl, 0, len(room.Spec.Rules))
	for _, r := range room.Spec.Rules {
		d := rules.Decl{Event: r.Event, When: r.When, Disabled: r.Disabled}
		for _, m := range r.Mutations {
			d.Mutations = append(d.Mutations, rules.MutationDecl{
				Op: m.Op, Target: m.Target, MustExist: m.MustExist,
				ComponentsFrom: m.ComponentsFrom, Components: m.Components,
			})
		}
		out = append(out, d)
	}
	return out
}

// CompileRules compiles a Room's spec.rules over the built-in rules. The controller (for the
// RulesValid condition) and the room server (before it applies them) both call it, so they
// cannot disagree about what is valid.
func CompileRules(room *xroomsv1alpha1.Room) (rules.Table, error) {
	return rules.Compile(RulesOf(room))
}
