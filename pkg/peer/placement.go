package peer

import (
	"fmt"

	"github.com/ringcache/ringcache/pkg/peer/peerpb"
	"github.com/ringcache/ringcache/pkg/ring"
)

// StatusMembers returns the ring members a node reports in its Status.
func StatusMembers(st *peerpb.StatusResponse) []ring.Member {
	ms := make([]ring.Member, 0, len(st.GetMembers()))
	for _, m := range st.GetMembers() {
		ms = append(ms, ring.Member{ID: m.Id, Addr: m.Addr, Weight: int(m.Weight), PlacementVersion: int(m.PlacementVersion)})
	}
	return ms
}

// StatusPlacement rebuilds the placement a node reports in its Status. A
// placement is a function of the member set and the ring parameters, so
// this is the placement the node and every reader with its view use: it
// is the one place a Status becomes a placement (mounts, warm-ups and
// test harnesses all call it).
func StatusPlacement(st *peerpb.StatusResponse) (*ring.Placement, error) {
	ms := StatusMembers(st)
	if len(ms) == 0 {
		return nil, fmt.Errorf("node %s reports no ring members", st.GetAddr())
	}
	p, err := ring.NewPlacement(ring.Config{PartitionCount: int(st.GetPartitionCount()), Load: st.GetLoad()}, ms)
	if err != nil {
		return nil, fmt.Errorf("placement of node %s: %w", st.GetAddr(), err)
	}
	return p, nil
}
