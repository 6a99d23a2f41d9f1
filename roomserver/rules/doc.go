// Package rules turns room events into entity mutations.
//
// A Table maps an event name to a Rule; a Rule is data, not code: the mutations it produces,
// each naming its op, the payload field that holds the target entity's id, and how the
// components are built from the payload. Builtin returns the rules every room starts with; a
// room can replace or remove any of them with Set and Remove.
//
// Rules can also be declared in CEL (Decl, cel.go), the form a Room's spec.rules takes:
// Compile turns declarations into a Table over the built-ins, each declaration replacing or
// disabling the rule for its event. Both kinds of rule live in the same Table and go through
// the same Apply. BuiltinDecls are the built-ins in declared form; they compile to the same
// behaviour (a test checks it), while Builtin keeps the faster Go path. Declared expressions
// are type-checked and cost-checked at compile time and cost-limited at run time; one that
// fails on an event returns an *EvalError and no mutations.
//
// Apply is pure: no I/O, no clock, no goroutines, and it never decodes a component value
// (values stay raw JSON). It reads the room only through a Lookup, which the room loop
// backs with the batcher's current view (flushed state plus pending changes).
//
// An event without a rule yields no mutations and no error; it still belongs on the room's
// stream. Every error Apply returns describes bad input in the event, names the event and the
// field, and comes with no mutations, so a rejected event changes nothing.
package rules
