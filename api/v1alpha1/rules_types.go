package v1alpha1

// ConditionRulesValid is True when every rule in spec.rules compiles and the room server uses
// them; False (reason InvalidRules) names the first errors, and the room keeps its last good
// rules.
const ConditionRulesValid = "RulesValid"

// RoomRule says what one room event does to the room's entities, in CEL
// (https://cel.dev, the expression language of Kubernetes validation rules). Every expression
// sees: event (the event's name), payload (its payload, a map; numbers are doubles), user_id
// (the acting user, "" for an event from a backend) and entity(id) (that entity's components
// as a map, empty when it does not exist, as they are before this event). Besides CEL's
// standard library: the strings, lists, sets and math extensions, optional values
// (m.?key.orValue(default)), m.without(key or [keys]) and nonEmpty(v).
// +kubebuilder:validation:XValidation:rule="!has(self.disabled) || !self.disabled || (!has(self.when) && !has(self.mutations))",message="a disabled rule takes no when and no mutations"
type RoomRule struct {
	// event is the room event this rule handles, such as door_opened. A rule for a built-in
	// event (user_joined, user_left, user_moved, user_picked_up, user_released) replaces the
	// built-in rule.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	Event string `json:"event"`

	// when is a CEL bool expression; when it is false the event changes nothing (it is still
	// published on the room stream). Unset means always.
	// For example: entity(payload.door_id).?locked.orValue(false) == false
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	When string `json:"when,omitempty"`

	// disabled removes the rule for event, built-in or not: the event changes no entity.
	// A disabled rule has no when and no mutations.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// mutations are the entity changes the event makes, in order. A rule with none recognizes
	// the event and changes nothing.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Mutations []RoomRuleMutation `json:"mutations,omitempty"`
}

// RoomRuleMutation is one entity change a rule makes.
// +kubebuilder:validation:XValidation:rule="self.op != 'delete' || (!has(self.components) && !has(self.componentsFrom))",message="a delete takes no components"
type RoomRuleMutation struct {
	// op is create (a new entity with these components, replacing any), update (merge these
	// components into the entity) or delete.
	// +kubebuilder:validation:Enum=create;update;delete
	// +required
	Op string `json:"op"`

	// target is a CEL string expression for the id of the entity to change, such as
	// payload.door_id or user_id. An empty id refuses the event.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Target string `json:"target"`

	// mustExist refuses the event (the pusher gets an error reply, nothing changes) when the
	// target entity does not exist.
	// +optional
	MustExist bool `json:"mustExist,omitempty"`

	// componentsFrom is a CEL expression for a map whose entries all become components, such
	// as payload.without('user_id') (every payload field but user_id).
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	ComponentsFrom string `json:"componentsFrom,omitempty"`

	// components maps a component name to a CEL expression for its value, any JSON value:
	// {"parent": "user_id", "open": "true", "color": "'#ff0000'"}. Applied after
	// componentsFrom, so they win over its entries.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Components map[string]string `json:"components,omitempty"`
}
