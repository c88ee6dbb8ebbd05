package blockstore

import "time"

// entry is a block in the index.
type entry struct {
	key      Key
	id       blockID
	size     int64 // data bytes
	diskSize int64 // file bytes: header and data
	meta     Meta
	// touched is when the file's mtime was last set; see Store.Get.
	touched    time.Time
	prev, next *entry
}

// index maps keys to blocks and orders the blocks from most to least
// recently used. It is not safe for concurrent use: the Store guards it
// with its mutex.
type index struct {
	m         map[Key]*entry
	root      entry // root.next is the most, root.prev the least recently used
	bytes     int64 // sum of size
	diskBytes int64 // sum of diskSize
}

func newIndex() *index {
	x := &index{m: make(map[Key]*entry)}
	x.root.next, x.root.prev = &x.root, &x.root
	return x
}

func (x *index) len() int { return len(x.m) }

func (x *index) get(k Key) (*entry, bool) {
	e, ok := x.m[k]
	return e, ok
}

// add adds e, which must not be in x, as the most recently used block.
func (x *index) add(e *entry) {
	x.m[e.key] = e
	x.bytes += e.size
	x.diskBytes += e.diskSize
	x.link(e)
}

// remove removes e, which must be in x.
func (x *index) remove(e *entry) {
	delete(x.m, e.key)
	x.bytes -= e.size
	x.diskBytes -= e.diskSize
	x.unlink(e)
}

// touch marks e, which must be in x, as the most recently used block.
func (x *index) touch(e *entry) {
	if x.root.next != e {
		x.unlink(e)
		x.link(e)
	}
}

// oldest returns the least recently used block, or nil if x is empty.
func (x *index) oldest() *entry {
	if x.root.prev == &x.root {
		return nil
	}
	return x.root.prev
}

func (x *index) link(e *entry) {
	e.prev, e.next = &x.root, x.root.next
	e.prev.next, e.next.prev = e, e
}

func (x *index) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}
