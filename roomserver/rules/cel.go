package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
)

// Decl is a rule declared as data, in CEL (https://cel.dev): the form a Room's spec.rules
// takes. Compile turns declarations into a Table.
//
// Every expression sees the variables event (the event's name, string), payload (its payload,
// map(string, dyn), numbers as doubles), user_id (the acting user, "" when none) and the
// function entity(id), the entity's current components as map(string, dyn) (an empty map when
// it does not exist), read before any of the event's own mutations.
type Decl struct {
	// Event is the room event the rule handles. A declared rule replaces the built-in rule
	// for the same event.
	Event string
	// When, if not empty, is a bool expression: when it is false the event changes nothing
	// (it still goes on the room stream).
	When string
	// Disabled removes the rule for Event (a built-in one, typically): the event changes no
	// entity. A disabled declaration has no When and no Mutations.
	Disabled bool
	// Mutations are what the event does, in order.
	Mutations []MutationDecl
}

// MutationDecl is one mutation of a declared rule.
type MutationDecl struct {
	// Op is "create", "update" or "delete".
	Op string
	// Target is a string expression: the id of the entity to change, such as
	// payload.target_id or user_id. It must not evaluate to "".
	Target string
	// MustExist refuses the event (an error reply, nothing changed) when the target entity
	// does not exist.
	MustExist bool
	// ComponentsFrom, if not empty, is a map(string, dyn) expression whose entries become
	// components, such as payload.without('user_id').
	ComponentsFrom string
	// Components maps a component name to an expression for its value (any JSON value:
	// null, bool, number, string, list, map). They are set after ComponentsFrom, so they win.
	Components map[string]string
}

// MaxCost bounds each expression of a declared rule, in CEL cost units (roughly one per
// operation; Kubernetes allows as much per validation expression). Compile rejects an
// expression whose worst-case estimate exceeds it, estimating with inputs as large as one
// event can be (MaxInputBytes); evaluation stops with an error when an event reaches it.
const MaxCost = 1_000_000

// MaxInputBytes is the largest input (payload, string, entity) the compile-time cost estimate
// assumes: a WebSocket frame's default read limit.
const MaxInputBytes = 64 << 10

// EvalError is a declared rule failing on one event at run time (a missing payload field, a
// wrong type, the cost limit). The event is refused and changes nothing.
type EvalError struct {
	Event string
	// Where names the expression: "when", "mutations[1].target", ...
	Where string
	Err   error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("%s: rule %s: %v", e.Event, e.Where, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// BuiltinDecls returns the built-in rules in declared form. Compiling them gives the same
// mutations and the same accepted and refused events as Builtin (a test checks this), which
// keeps its compiled Go path because it is several times faster.
func BuiltinDecls() []Decl {
	const exceptUser = "payload.without('user_id')"
	return []Decl{
		{Event: "user_joined", Mutations: []MutationDecl{{Op: "create", Target: "user_id", ComponentsFrom: exceptUser}}},
		{Event: "user_left", Mutations: []MutationDecl{{Op: "delete", Target: "user_id"}}},
		{Event: "user_moved", Mutations: []MutationDecl{{Op: "update", Target: "user_id", ComponentsFrom: exceptUser}}},
		{Event: "user_picked_up", Mutations: []MutationDecl{{Op: "update", Target: "payload.target_id", MustExist: true,
			Components: map[string]string{"parent": "user_id + ':' + nonEmpty(payload.hand)"}}}},
		{Event: "user_released", Mutations: []MutationDecl{{Op: "update", Target: "payload.target_id", MustExist: true,
			Components: map[string]string{"parent": "null"}}}},
	}
}

// Compile returns the built-in rules with decls applied over them: each declaration replaces
// (or, Disabled, removes) the rule for its event. It reports every invalid declaration, each
// named by its index and event, and then returns no table.
func Compile(decls []Decl) (Table, error) {
	t := Builtin()
	var errs []error
	seen := map[string]int{}
	for i, d := range decls {
		where := fmt.Sprintf("rules[%d]", i)
		if d.Event != "" {
			where += " (" + d.Event + ")"
		}
		if d.Event == "" {
			errs = append(errs, fmt.Errorf("%s: event must not be empty", where))
			continue
		}
		if j, dup := seen[d.Event]; dup {
			errs = append(errs, fmt.Errorf("%s: event %q already has a rule, rules[%d]", where, d.Event, j))
			continue
		}
		seen[d.Event] = i
		if d.Disabled {
			if d.When != "" || len(d.Mutations) > 0 {
				errs = append(errs, fmt.Errorf("%s: a disabled rule takes no when and no mutations", where))
				continue
			}
			t.Remove(d.Event)
			continue
		}
		r, err := compileDecl(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		t.rules[d.Event] = compiled{decl: r}
	}
	if len(errs) > 0 {
		return Table{}, errors.Join(errs...)
	}
	return t, nil
}

// celRule is a compiled Decl.
type celRule struct {
	when      cel.Program // nil: always
	mutations []celMutation
}

type celMutation struct {
	op         entity.Op
	target     cel.Program
	mustExist  bool
	from       cel.Program // nil: none
	components []celComponent
}

type celComponent struct {
	name string
	prog cel.Program
}

// celEnv is the environment every declared expression is compiled in.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("event", cel.StringType),
		cel.Variable("user_id", cel.StringType),
		cel.Variable("payload", anyMap),
		// entity reads the room through the Lookup of the event being evaluated, so its
		// implementation is bound per evaluation.
		cel.Function("entity", cel.Overload("entity_string", []*cel.Type{cel.StringType},
			cel.MapType(cel.StringType, cel.DynType), cel.LateFunctionBinding())),
		// m.without(k) and m.without([k, ...]) are m without those keys, in linear time (cel-go's
		// transformMap builds maps in quadratic time, so it is not offered).
		cel.Function("without",
			cel.MemberOverload("map_without_string", []*cel.Type{anyMap, cel.StringType}, anyMap,
				cel.BinaryBinding(func(m, k ref.Val) ref.Val { return without(m, []ref.Val{k}) })),
			cel.MemberOverload("map_without_list", []*cel.Type{anyMap, cel.ListType(cel.StringType)}, anyMap,
				cel.BinaryBinding(func(m, ks ref.Val) ref.Val {
					l, ok := ks.(traits.Lister)
					if !ok {
						return types.NewErr("without: want a list of keys, got %s", describe(ks))
					}
					var keys []ref.Val
					for it := l.Iterator(); it.HasNext() == types.True; {
						keys = append(keys, it.Next())
					}
					return without(m, keys)
				}))),
		// nonEmpty(v) is v when it is a non-empty string, else an error: ids and the like.
		cel.Function("nonEmpty", cel.Overload("nonEmpty_dyn", []*cel.Type{cel.DynType}, cel.StringType,
			cel.UnaryBinding(func(v ref.Val) ref.Val {
				if s, ok := v.(types.String); ok && s != "" {
					return s
				}
				return types.NewErr("nonEmpty: want a non-empty string, got %s", describe(v))
			}))),
		ext.Strings(), ext.Lists(), ext.Sets(), ext.Math(), cel.OptionalTypes(),
	)
})

// anyMap is the type of payload and of entities: JSON objects.
var anyMap = cel.MapType(cel.StringType, cel.DynType)

// without returns m without keys.
func without(m ref.Val, keys []ref.Val) ref.Val {
	mm, ok := m.(traits.Mapper)
	if !ok {
		return types.NewErr("without: want a map, got %s", describe(m))
	}
	drop := make(map[types.String]bool, len(keys))
	for _, k := range keys {
		if s, ok := k.(types.String); ok {
			drop[s] = true
		}
	}
	out := map[ref.Val]ref.Val{}
	for it := mm.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		if s, ok := k.(types.String); !ok || !drop[s] {
			out[k] = mm.Get(k)
		}
	}
	return types.NewRefValMap(types.DefaultTypeAdapter, out)
}

func describe(v ref.Val) string {
	if types.IsError(v) {
		return v.(*types.Err).Error()
	}
	if s, ok := v.(types.String); ok {
		return fmt.Sprintf("%q", string(s))
	}
	return v.Type().(ref.Type).TypeName()
}

func compileDecl(d Decl) (*celRule, error) {
	r := &celRule{}
	var err error
	if d.When != "" {
		if r.when, err = program("when", d.When, cel.BoolType); err != nil {
			return nil, err
		}
	}
	for i, md := range d.Mutations {
		where := fmt.Sprintf("mutations[%d]", i)
		m := celMutation{mustExist: md.MustExist}
		switch md.Op {
		case "create":
			m.op = entity.Create
		case "update":
			m.op = entity.Update
		case "delete":
			m.op = entity.Delete
		default:
			return nil, fmt.Errorf("%s.op: %q is not create, update or delete", where, md.Op)
		}
		if md.Target == "" {
			return nil, fmt.Errorf("%s.target: must not be empty", where)
		}
		if m.target, err = program(where+".target", md.Target, cel.StringType); err != nil {
			return nil, err
		}
		if m.op == entity.Delete && (md.ComponentsFrom != "" || len(md.Components) > 0) {
			return nil, fmt.Errorf("%s: a delete takes no components", where)
		}
		if md.ComponentsFrom != "" {
			if m.from, err = program(where+".componentsFrom", md.ComponentsFrom, cel.MapType(cel.StringType, cel.DynType)); err != nil {
				return nil, err
			}
		}
		for _, name := range slices.Sorted(maps.Keys(md.Components)) {
			if name == "" {
				return nil, fmt.Errorf("%s.components: a component name must not be empty", where)
			}
			p, err := program(fmt.Sprintf("%s.components.%s", where, name), md.Components[name], nil)
			if err != nil {
				return nil, err
			}
			m.components = append(m.components, celComponent{name: name, prog: p})
		}
		r.mutations = append(r.mutations, m)
	}
	return r, nil
}

// program compiles, type-checks and cost-checks one expression; want is the type it must
// have (nil: any). Errors name the expression.
func program(where, expr string, want *cel.Type) (cel.Program, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err // the environment is fixed; any test catches this
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%s: %w", where, iss.Err())
	}
	if want != nil && !produces(ast.OutputType(), want) {
		return nil, fmt.Errorf("%s: %s has type %s, want %s", where, expr, ast.OutputType(), want)
	}
	est, err := env.EstimateCost(ast, estimator{})
	if err != nil {
		return nil, fmt.Errorf("%s: estimating the cost: %w", where, err)
	}
	if est.Max > MaxCost {
		return nil, fmt.Errorf("%s: %s may cost up to %d, more than the limit of %d: bound the work it does over the payload or entities", where, expr, est.Max, MaxCost)
	}
	p, err := env.Program(ast, cel.CostLimit(MaxCost), cel.CostTracking(estimator{}), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return p, nil
}

// produces reports whether an expression of type got can yield a value of type want: the
// same type, or dyn (checked when it runs).
func produces(got, want *cel.Type) bool {
	if got.Kind() == types.DynKind || got.IsExactType(want) {
		return true
	}
	if want.Kind() == types.MapKind && got.Kind() == types.MapKind {
		k := got.Parameters()[0]
		return k.Kind() == types.DynKind || k.IsExactType(cel.StringType)
	}
	return false
}

// estimator bounds every input of unknown size by MaxInputBytes, so the estimate is finite.
type estimator struct{}

func (estimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if n.ComputedSize() != nil {
		return nil
	}
	return &cost.SizeEstimate{Min: 0, Max: MaxInputBytes}
}

// EstimateCallCost covers the functions declared here (entity decodes up to a whole entity)
// and gives optional values read from dyn maps a bounded size, as every input has.
func (estimator) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	switch function {
	case "orValue", "value":
		return cost.NewCallEstimate(cost.CostEstimate{Min: 1, Max: 1}, &cost.SizeEstimate{Min: 0, Max: MaxInputBytes})
	}
	switch overloadID {
	case "entity_string":
		return cost.NewCallEstimate(cost.CostEstimate{Min: 1, Max: 1 + MaxInputBytes/8}, &cost.SizeEstimate{Min: 0, Max: MaxInputBytes})
	case "nonEmpty_dyn":
		return cost.NewCallEstimate(cost.CostEstimate{Min: 1, Max: 1}, &cost.SizeEstimate{Min: 0, Max: MaxInputBytes})
	case "map_without_string", "map_without_list":
		return cost.NewCallEstimate(cost.CostEstimate{Min: 1, Max: 1 + MaxInputBytes}, &cost.SizeEstimate{Min: 0, Max: MaxInputBytes})
	}
	return nil
}

// CallCost charges the functions declared here for the entries they go through, at run time.
func (estimator) CallCost(function, overloadID string, args []ref.Val, result ref.Val) *uint64 {
	var n uint64
	switch overloadID {
	case "entity_string":
		n = 1 + size(result)
	case "map_without_string", "map_without_list":
		n = 1 + size(args[0]) + size(args[1])
	default:
		return nil
	}
	return &n
}

func size(v ref.Val) uint64 {
	if s, ok := v.(traits.Sizer); ok {
		if n, ok := s.Size().(types.Int); ok && n > 0 {
			return uint64(n)
		}
	}
	return 0
}

// apply evaluates the rule for ev. Like the compiled path, it resolves and checks every target
// before building any components, and returns no mutations with an error.
func (r *celRule) apply(ev event.Event, look Lookup) ([]entity.Mutation, error) {
	vars := &activation{ev: ev, look: look}
	if r.when != nil {
		v, err := eval(r.when, vars)
		if err != nil {
			return nil, &EvalError{Event: ev.Name, Where: "when", Err: err}
		}
		b, ok := v.(types.Bool)
		if !ok {
			return nil, &EvalError{Event: ev.Name, Where: "when", Err: fmt.Errorf("got %s, want a bool", describe(v))}
		}
		if !b {
			return []entity.Mutation{}, nil
		}
	}
	out := make([]entity.Mutation, len(r.mutations))
	for i, m := range r.mutations {
		v, err := eval(m.target, vars)
		if err != nil {
			return nil, &EvalError{Event: ev.Name, Where: fmt.Sprintf("mutations[%d].target", i), Err: err}
		}
		id, ok := v.(types.String)
		if !ok || id == "" {
			return nil, &EvalError{Event: ev.Name, Where: fmt.Sprintf("mutations[%d].target", i),
				Err: fmt.Errorf("got %s, want a non-empty string", describe(v))}
		}
		if m.mustExist {
			if look == nil {
				return nil, fmt.Errorf("%s: entity %q does not exist", ev.Name, id)
			}
			if _, ok := look(string(id)); !ok {
				return nil, fmt.Errorf("%s: entity %q does not exist", ev.Name, id)
			}
		}
		out[i] = entity.Mutation{Op: m.op, ID: string(id)}
	}
	for i, m := range r.mutations {
		if m.op == entity.Delete {
			continue
		}
		comps := entity.Components{}
		if m.from != nil {
			v, err := eval(m.from, vars)
			if err != nil {
				return nil, &EvalError{Event: ev.Name, Where: fmt.Sprintf("mutations[%d].componentsFrom", i), Err: err}
			}
			obj, ok := v.(traits.Mapper)
			if !ok {
				return nil, &EvalError{Event: ev.Name, Where: fmt.Sprintf("mutations[%d].componentsFrom", i),
					Err: fmt.Errorf("got %s, want a map", describe(v))}
			}
			for it := obj.Iterator(); it.HasNext() == types.True; {
				k := it.Next()
				name, ok := k.(types.String)
				if !ok {
					return nil, &EvalError{Event: ev.Name, Where: fmt.Sprintf("mutations[%d].componentsFrom", i),
						Err: fmt.Errorf("component name %s is not a string", describe(k))}
				}
				raw, err := appendJSON(nil, obj.Get(k), 0)
				if err != nil {
					return nil, &EvalError{Event: ev.Name, Where: fmt.Sprintf("mutations[%d].componentsFrom.%s", i, name), Err: err}
				}
				comps[string(name)] = raw
			}
		}
		for _, c := range m.components {
			where := fmt.Sprintf("mutations[%d].components.%s", i, c.name)
			v, err := eval(c.prog, vars)
			if err != nil {
				return nil, &EvalError{Event: ev.Name, Where: where, Err: err}
			}
			raw, err := appendJSON(nil, v, 0)
			if err != nil {
				return nil, &EvalError{Event: ev.Name, Where: where, Err: err}
			}
			comps[c.name] = raw
		}
		out[i].Components = comps
	}
	return out, nil
}

func eval(p cel.Program, vars *activation) (ref.Val, error) {
	v, _, err := p.Eval(vars)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// maxDepth bounds the nesting of a value written as JSON (CEL values cannot be cyclic, but
// can be deep).
const maxDepth = 100

// appendJSON appends v as JSON: null, bool, number, string, list or map with string keys (in
// sorted order, as encoding/json writes maps). Other CEL values (bytes, timestamps,
// durations, types, optionals) have no JSON form and are an error: convert them with string().
func appendJSON(b []byte, v ref.Val, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value nested deeper than %d", maxDepth)
	}
	switch x := v.(type) {
	case types.Null:
		return append(b, "null"...), nil
	case types.Bool:
		return strconv.AppendBool(b, bool(x)), nil
	case types.Int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case types.Uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case types.Double:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", f)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1e21 {
			return strconv.AppendFloat(b, f, 'f', -1, 64), nil // 1.0 is 1, as encoding/json writes it
		}
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2], b = b[n-1], b[:n-1] // 1e-07 is 1e-7, as encoding/json writes it
		}
		return b, nil
	case types.String:
		q, _ := json.Marshal(string(x)) // a string always marshals
		return append(b, q...), nil
	case traits.Lister:
		b = append(b, '[')
		for it, n := x.Iterator(), 0; it.HasNext() == types.True; n++ {
			if n > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, it.Next(), depth+1); err != nil { // a list iterates its elements
				return nil, err
			}
		}
		return append(b, ']'), nil
	case traits.Mapper:
		var keys []string
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			s, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %s is not a string", describe(k))
			}
			keys = append(keys, string(s))
		}
		slices.Sort(keys)
		b = append(b, '{')
		for n, k := range keys {
			if n > 0 {
				b = append(b, ',')
			}
			q, _ := json.Marshal(k)
			b = append(append(b, q...), ':')
			var err error
			if b, err = appendJSON(b, x.Get(types.String(k)), depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	if types.IsError(v) {
		return nil, v.(*types.Err)
	}
	return nil, fmt.Errorf("%s is not a JSON value: convert it with string()", describe(v))
}

// activation gives the expressions the event being evaluated. The payload is decoded once,
// and only when an expression reads it.
type activation struct {
	ev      event.Event
	look    Lookup
	payload map[string]any
	decoded bool
	err     error
}

var _ interpreter.FunctionActivation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "event":
		return a.ev.Name, true
	case "user_id":
		return a.ev.UserID(), true
	case "payload":
		if !a.decoded {
			a.decoded = true
			a.payload, a.err = decodeComponents(a.ev.Payload)
		}
		if a.err != nil {
			return types.NewErr("payload: %v", a.err), true
		}
		return a.payload, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveFunction(name string) (functions.LateBoundOp, bool) {
	if name != "entity" {
		return nil, false
	}
	return a.entity, true
}

// entity is entity(id): the components of the entity, or an empty map.
func (a *activation) entity(_ string, args ...ref.Val) ref.Val {
	env, _ := celEnv()
	id, ok := args[0].(types.String)
	if !ok || a.look == nil {
		return env.CELTypeAdapter().NativeToValue(map[string]any{})
	}
	comps, ok := a.look(string(id))
	if !ok {
		return env.CELTypeAdapter().NativeToValue(map[string]any{})
	}
	m, err := decodeComponents(comps)
	if err != nil {
		return types.NewErr("entity(%q): %v", string(id), err)
	}
	return env.CELTypeAdapter().NativeToValue(m)
}

func decodeComponents(raw map[string]json.RawMessage) (map[string]any, error) {
	m := make(map[string]any, len(raw))
	for k, v := range raw {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		m[k] = x
	}
	return m, nil
}
