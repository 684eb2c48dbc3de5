package kdl

// Document is a parsed KDL document: its top-level nodes, in order.
type Document struct {
	Nodes []*Node
}

// Node is a KDL node.
type Node struct {
	Type *string // type annotation, as in (published)date; nil when absent
	Name string
	Args []Value
	// Props holds each property name once, in the order names first
	// appear; a repeated name takes its rightmost value, as the spec says.
	Props    []Prop
	Children []*Node
	Pos      // where the node (or its annotation) starts
}

// Prop is a property of a node.
type Prop struct {
	Name  string
	Value Value
	Pos   // where the name starts
}

// Arg returns the i-th argument.
func (n *Node) Arg(i int) (Value, bool) {
	if i < 0 || i >= len(n.Args) {
		return Value{}, false
	}
	return n.Args[i], true
}

// Prop returns the value of the named property.
func (n *Node) Prop(name string) (Value, bool) {
	if i := n.propIndex(name); i >= 0 {
		return n.Props[i].Value, true
	}
	return Value{}, false
}

// SetProp sets a property, replacing an existing one of that name.
func (n *Node) SetProp(name string, v Value) {
	n.setProp(Prop{Name: name, Value: v})
}

func (n *Node) setProp(p Prop) {
	if i := n.propIndex(p.Name); i >= 0 {
		n.Props[i] = p
		return
	}
	n.Props = append(n.Props, p)
}

func (n *Node) propIndex(name string) int {
	for i := range n.Props {
		if n.Props[i].Name == name {
			return i
		}
	}
	return -1
}

// Child returns the first child with the given name, or nil.
func (n *Node) Child(name string) *Node {
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ChildrenNamed returns the children with the given name, in order.
func (n *Node) ChildrenNamed(name string) []*Node {
	var out []*Node
	for _, c := range n.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}
