package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
)

// Lookup returns an entity's current components (including changes not yet flushed) and
// whether it exists. Rules only read what it returns.
type Lookup func(id string) (entity.Components, bool)

// Rule is what one room event turns into: its mutations, in order. A Rule with no mutations
// recognizes the event and changes nothing.
type Rule struct {
	Mutations []Spec
}

// Spec describes one mutation a rule produces.
type Spec struct {
	// Op is entity.Create, entity.Update or entity.Delete.
	Op entity.Op
	// Target is the payload field whose value, a non-empty JSON string, is the id of the entity
	// to change (event.UserIDKey for the acting user).
	Target string
	// MustExist rejects the event when Lookup does not find the target entity, for events that
	// make no sense without it (picking up a thing that is not there). It is checked before
	// any mutation is built, so it does not see this event's own earlier mutations.
	MustExist bool
	// CopyPayload makes every top-level payload field a component, except those in Omit.
	CopyPayload bool
	// Omit lists payload fields CopyPayload leaves out (at least event.UserIDKey, usually).
	Omit []string
	// Set gives components values built from the payload; it is applied after CopyPayload,
	// so it wins over a payload field of the same name.
	Set map[string]Value
}

// Value builds one component value from an event. At most one field is set; the zero Value
// is JSON null.
type Value struct {
	// Field copies the payload field's JSON as it is; the field must be present.
	Field string
	// Format makes a JSON string from a template in which {name} stands for payload field
	// name, which must be a non-empty JSON string: "{user_id}:{hand}". Braces are only
	// allowed around a field name.
	Format string
	// JSON is a literal value; nil means null.
	JSON json.RawMessage
}

// Null is the JSON null value, for components a rule clears.
var Null = Value{JSON: json.RawMessage("null")}

// Table is a set of rules by event name. The zero Table has no rules. Copies of a Table share
// its rules, so Clone one before changing it when another holder must not see the change.
type Table struct {
	rules map[string]compiled
}

// compiled is a Rule checked by Set, with its templates parsed once, or a declared rule
// (decl not nil) compiled by Compile.
type compiled struct {
	decl    *celRule
	rule    Rule
	formats []map[string][]part // parsed Format templates, by Spec index and component name
}

// part is a piece of a Format template: literal text, or the payload field named by field.
type part struct {
	text  string
	field string
}

// Builtin returns a new Table holding the rules every room starts with:
//
//	user_joined    create <user_id> with the payload's fields (but user_id) as components
//	user_left      delete <user_id>
//	user_moved     update <user_id>, merging the payload's fields (but user_id)
//	user_picked_up update <target_id> (which must exist): parent = "<user_id>:<hand>"
//	user_released  update <target_id> (which must exist): parent = null
func Builtin() Table {
	var t Table
	builtins := map[string]Rule{
		"user_joined": {Mutations: []Spec{{
			Op: entity.Create, Target: event.UserIDKey, CopyPayload: true, Omit: []string{event.UserIDKey},
		}}},
		"user_left": {Mutations: []Spec{{
			Op: entity.Delete, Target: event.UserIDKey,
		}}},
		"user_moved": {Mutations: []Spec{{
			Op: entity.Update, Target: event.UserIDKey, CopyPayload: true, Omit: []string{event.UserIDKey},
		}}},
		"user_picked_up": {Mutations: []Spec{{
			Op: entity.Update, Target: "target_id", MustExist: true,
			Set: map[string]Value{"parent": {Format: "{" + event.UserIDKey + "}:{hand}"}},
		}}},
		"user_released": {Mutations: []Spec{{
			Op: entity.Update, Target: "target_id", MustExist: true,
			Set: map[string]Value{"parent": Null},
		}}},
	}
	for name, r := range builtins {
		if err := t.Set(name, r); err != nil {
			panic(err) // the built-in rules are constants; a bad one is a bug caught by any test
		}
	}
	return t
}

// Set checks r and makes it the rule for event name, replacing any rule it had. An invalid
// rule is rejected with an error and changes nothing.
func (t *Table) Set(name string, r Rule) error {
	if name == "" {
		return errors.New("rule: event name must not be empty")
	}
	c, err := compile(r)
	if err != nil {
		return fmt.Errorf("rule %s: %w", name, err)
	}
	if t.rules == nil {
		t.rules = map[string]compiled{}
	}
	t.rules[name] = c
	return nil
}

// Remove drops the rule for event name, so the event changes no entity.
func (t *Table) Remove(name string) {
	delete(t.rules, name)
}

// Rule returns the rule for event name. A declared rule (see Compile) is found with an empty
// Rule: its mutations are expressions, not Specs.
func (t Table) Rule(name string) (Rule, bool) {
	c, ok := t.rules[name]
	if !ok {
		return Rule{}, false
	}
	return cloneRule(c.rule), true
}

// Names returns the event names that have a rule, sorted.
func (t Table) Names() []string {
	return slices.Sorted(maps.Keys(t.rules))
}

// Clone returns a Table with the same rules that can be changed on its own.
func (t Table) Clone() Table {
	return Table{rules: maps.Clone(t.rules)}
}

// Apply returns the mutations ev makes, in order. An event without a rule returns (nil, nil).
// On error (bad input in the event, described with the event and field names) it returns no
// mutations. Each returned mutation has its own Components map, which the caller may keep
// or change; component values are shared with ev's payload and must not be changed.
//
// look is called only for specs with MustExist; a nil look finds nothing.
func (t Table) Apply(ev event.Event, look Lookup) ([]entity.Mutation, error) {
	c, ok := t.rules[ev.Name]
	if !ok {
		return nil, nil
	}
	if c.decl != nil {
		return c.decl.apply(ev, look)
	}
	// Resolve and check every target first, so an error leaves nothing half built.
	var idsBuf [2]string
	ids := idsBuf[:0]
	for _, s := range c.rule.Mutations {
		id, ok := payloadString(ev, s.Target)
		if !ok || id == "" {
			return nil, fmt.Errorf("%s: payload field %q must be a non-empty string", ev.Name, s.Target)
		}
		if s.MustExist {
			if look == nil {
				return nil, fmt.Errorf("%s: entity %q does not exist", ev.Name, id)
			}
			if _, ok := look(id); !ok {
				return nil, fmt.Errorf("%s: entity %q does not exist", ev.Name, id)
			}
		}
		ids = append(ids, id)
	}
	out := make([]entity.Mutation, 0, len(c.rule.Mutations))
	for i, s := range c.rule.Mutations {
		m := entity.Mutation{Op: s.Op, ID: ids[i]}
		if s.Op != entity.Delete {
			comps, err := c.components(i, s, ev)
			if err != nil {
				return nil, err
			}
			m.Components = comps
		}
		out = append(out, m)
	}
	return out, nil
}

// components builds the components of spec i of c from ev.
func (c compiled) components(i int, s Spec, ev event.Event) (entity.Components, error) {
	n := len(s.Set)
	if s.CopyPayload {
		n += len(ev.Payload)
	}
	comps := make(entity.Components, n)
	if s.CopyPayload {
		for k, v := range ev.Payload {
			if !slices.Contains(s.Omit, k) {
				comps[k] = v
			}
		}
	}
	for name, v := range s.Set {
		switch {
		case v.Field != "":
			raw, ok := ev.Payload[v.Field]
			if !ok {
				return nil, fmt.Errorf("%s: payload field %q is required", ev.Name, v.Field)
			}
			comps[name] = raw
		case v.Format != "":
			raw, err := format(ev, c.formats[i][name])
			if err != nil {
				return nil, err
			}
			comps[name] = raw
		case v.JSON != nil:
			comps[name] = v.JSON
		default:
			comps[name] = Null.JSON
		}
	}
	return comps, nil
}

// format fills a parsed template from ev's payload and returns it as a JSON string.
func format(ev event.Event, parts []part) (json.RawMessage, error) {
	var sb strings.Builder
	for _, p := range parts {
		if p.field == "" {
			sb.WriteString(p.text)
			continue
		}
		s, ok := payloadString(ev, p.field)
		if !ok || s == "" {
			return nil, fmt.Errorf("%s: payload field %q must be a non-empty string", ev.Name, p.field)
		}
		sb.WriteString(s)
	}
	return json.Marshal(sb.String()) // a string always marshals
}

// compile checks r and parses its templates.
func compile(r Rule) (compiled, error) {
	c := compiled{rule: cloneRule(r), formats: make([]map[string][]part, len(r.Mutations))}
	for i, s := range c.rule.Mutations {
		if s.Op != entity.Create && s.Op != entity.Update && s.Op != entity.Delete {
			return compiled{}, fmt.Errorf("mutation %d: invalid op %d", i, s.Op)
		}
		if s.Target == "" {
			return compiled{}, fmt.Errorf("mutation %d: target field must not be empty", i)
		}
		if s.Op == entity.Delete && (s.CopyPayload || len(s.Set) > 0) {
			return compiled{}, fmt.Errorf("mutation %d: a delete takes no components", i)
		}
		for name, v := range s.Set {
			if err := checkValue(v); err != nil {
				return compiled{}, fmt.Errorf("mutation %d: component %q: %w", i, name, err)
			}
			if v.Format == "" {
				continue
			}
			parts, err := parseFormat(v.Format)
			if err != nil {
				return compiled{}, fmt.Errorf("mutation %d: component %q: %w", i, name, err)
			}
			if c.formats[i] == nil {
				c.formats[i] = map[string][]part{}
			}
			c.formats[i][name] = parts
		}
	}
	return c, nil
}

func checkValue(v Value) error {
	set := 0
	for _, b := range []bool{v.Field != "", v.Format != "", v.JSON != nil} {
		if b {
			set++
		}
	}
	if set > 1 {
		return errors.New("value must set at most one of Field, Format and JSON")
	}
	if v.JSON != nil && !json.Valid(v.JSON) {
		return fmt.Errorf("invalid JSON %q", v.JSON)
	}
	return nil
}

// parseFormat splits "{user_id}:{hand}" into field and text parts.
func parseFormat(f string) ([]part, error) {
	var parts []part
	for f != "" {
		open := strings.IndexAny(f, "{}")
		if open < 0 {
			parts = append(parts, part{text: f})
			break
		}
		if f[open] == '}' {
			return nil, fmt.Errorf("format: unmatched '}'")
		}
		if open > 0 {
			parts = append(parts, part{text: f[:open]})
		}
		end := strings.IndexAny(f[open+1:], "{}")
		if end < 0 || f[open+1+end] != '}' {
			return nil, fmt.Errorf("format: unmatched '{'")
		}
		name := f[open+1 : open+1+end]
		if name == "" {
			return nil, fmt.Errorf("format: empty field name")
		}
		parts = append(parts, part{field: name})
		f = f[open+1+end+1:]
	}
	return parts, nil
}

// cloneRule copies the slices and maps of r so a caller changing its Rule later does not
// change the table.
func cloneRule(r Rule) Rule {
	out := Rule{Mutations: slices.Clone(r.Mutations)}
	for i := range out.Mutations {
		out.Mutations[i].Omit = slices.Clone(out.Mutations[i].Omit)
		out.Mutations[i].Set = maps.Clone(out.Mutations[i].Set)
	}
	return out
}

// payloadString is ev.String with a fast path for strings without escapes (every id in
// practice), which skips the JSON decoder on the hot path of every event.
func payloadString(ev event.Event, key string) (string, bool) {
	v, ok := ev.Payload[key]
	if !ok {
		return "", false
	}
	if n := len(v); n >= 2 && v[0] == '"' && v[n-1] == '"' {
		inner := v[1 : n-1]
		plain := utf8.Valid(inner)
		for _, c := range inner {
			if c < 0x20 || c == '\\' || c == '"' {
				plain = false
				break
			}
		}
		if plain {
			return string(inner), true
		}
	}
	return ev.String(key)
}
