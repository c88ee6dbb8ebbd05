package blockstore

import (
	"slices"
	"testing"
)

// order returns x's keys' objects from most to least recently used,
// checking the list's links both ways.
func order(t *testing.T, x *index) []string {
	t.Helper()
	var fwd, back []string
	for e := x.root.next; e != &x.root; e = e.next {
		fwd = append(fwd, e.key.Object)
	}
	for e := x.root.prev; e != &x.root; e = e.prev {
		back = append(back, e.key.Object)
	}
	slices.Reverse(back)
	if !slices.Equal(fwd, back) || len(fwd) != x.len() {
		t.Fatalf("broken list: forward %v, backward %v, %d in map", fwd, back, x.len())
	}
	return fwd
}

func TestIndex(t *testing.T) {
	x := newIndex()
	if x.oldest() != nil {
		t.Fatal("oldest of an empty index")
	}
	es := map[string]*entry{}
	for i, name := range []string{"a", "b", "c"} {
		e := &entry{key: Key{Object: name}, size: int64(i + 1), diskSize: int64(10 * (i + 1))}
		es[name] = e
		x.add(e)
	}
	steps := []struct {
		name      string
		do        func()
		want      []string
		wantBytes int64
	}{
		{"added", func() {}, []string{"c", "b", "a"}, 6},
		{"touch oldest", func() { x.touch(es["a"]) }, []string{"a", "c", "b"}, 6},
		{"touch newest", func() { x.touch(es["a"]) }, []string{"a", "c", "b"}, 6},
		{"touch middle", func() { x.touch(es["c"]) }, []string{"c", "a", "b"}, 6},
		{"remove oldest", func() { x.remove(x.oldest()) }, []string{"c", "a"}, 4},
		{"remove newest", func() { x.remove(es["c"]) }, []string{"a"}, 1},
		{"remove last", func() { x.remove(es["a"]) }, nil, 0},
	}
	for _, st := range steps {
		st.do()
		if got := order(t, x); !slices.Equal(got, st.want) {
			t.Errorf("%s: order %v, want %v", st.name, got, st.want)
		}
		if x.bytes != st.wantBytes || x.diskBytes != 10*st.wantBytes {
			t.Errorf("%s: bytes %d, disk bytes %d, want %d, %d", st.name, x.bytes, x.diskBytes, st.wantBytes, 10*st.wantBytes)
		}
	}
	if _, ok := x.get(Key{Object: "a"}); ok {
		t.Error("removed entry still found")
	}
}
