package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// Fixed members for the pinned tables. IDs look like the node IDs a
// DaemonSet would persist; addresses are never used by placement.
var (
	mA = Member{ID: "node-a", Addr: "10.0.0.1:7070", Weight: 1}
	mB = Member{ID: "node-b", Addr: "10.0.0.2:7070", Weight: 1}
	mC = Member{ID: "node-c", Addr: "10.0.0.3:7070", Weight: 1}
	mD = Member{ID: "node-d", Addr: "10.0.0.4:7070", Weight: 2}
	mE = Member{ID: "node-e", Addr: "10.0.0.5:7070", Weight: 1}
)

// pinnedKeys are realistic ringcache keys: volumeUUID + "/" + objectKey.
var pinnedKeys = []string{
	"5f0c5e8e-8a3b-4f47-9d0e-1d2f3a4b5c6d/chunks/0/0/1_0_4194304",
	"5f0c5e8e-8a3b-4f47-9d0e-1d2f3a4b5c6d/chunks/0/0/1_1_4194304",
	"5f0c5e8e-8a3b-4f47-9d0e-1d2f3a4b5c6d/chunks/0/7/7001_3_4194304",
	"0b3e9a61-2c4d-4e5f-8a9b-0c1d2e3f4a5b/chunks/12/12345/12345678_0_1048576",
	"0b3e9a61-2c4d-4e5f-8a9b-0c1d2e3f4a5b/chunks/99/99999/99999999_15_4194304",
}

func ids(ms []Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = strings.TrimPrefix(m.ID, "node-")
	}
	return strings.Join(s, ",")
}

func mkMembers(n int, prefix string) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("%s%03d", prefix, i), Addr: fmt.Sprintf("10.1.%d.%d:7070", i/250, i%250+1), Weight: 1}
	}
	return ms
}

func mustPlacement(t testing.TB, cfg Config, ms []Member) *Placement {
	t.Helper()
	p, err := NewPlacement(cfg, ms)
	if err != nil {
		t.Fatalf("NewPlacement: %v", err)
	}
	return p
}

// TestPlacementPinnedOwners pins owner sequences for a join/leave history.
// The values were computed once and must never change without a
// PlacementVersion bump: every node and reader of a cluster must agree on
// them, across processes, releases and architectures. They were checked
// against the reference walk of TestReplicaWalkMatchesConsistent and for
// reversed and shuffled member order when they were last recomputed (for
// the virtual-node replica ranking).
func TestPlacementPinnedOwners(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		n       int
		want    []string // per pinnedKeys entry, owner IDs without "node-"
	}{
		{"single", []Member{mA}, 3, []string{"a", "a", "a", "a", "a"}},
		{"pair n>len", []Member{mA, mB}, 5, []string{"b,a", "a,b", "a,b", "b,a", "b,a"}},
		{"three", []Member{mA, mB, mC}, 3, []string{"c,b,a", "a,c,b", "a,c,b", "b,c,a", "b,c,a"}},
		{"three primary only", []Member{mA, mB, mC}, 1, []string{"c", "a", "a", "b", "b"}},
		{"join d (weight 2)", []Member{mA, mB, mC, mD}, 3, []string{"c,b,d", "a,d,c", "a,d,c", "b,c,d", "b,c,d"}},
		{"join e", []Member{mA, mB, mC, mD, mE}, 3, []string{"c,b,d", "a,d,e", "e,a,d", "e,b,c", "b,e,c"}},
		{"join e, all owners", []Member{mA, mB, mC, mD, mE}, 5, []string{"c,b,d,a,e", "a,d,e,c,b", "e,a,d,c,b", "e,b,c,d,a", "b,e,c,d,a"}},
		{"leave b", []Member{mA, mC, mD, mE}, 3, []string{"c,d,a", "a,d,e", "e,a,d", "e,c,d", "e,c,d"}},
		{"leave b, all owners", []Member{mA, mC, mD, mE}, 10, []string{"c,d,a,e", "a,d,e,c", "e,a,d,c", "e,c,d,a", "e,c,d,a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlacement(t, Config{}, tt.members)
			var got []string
			for _, k := range pinnedKeys {
				got = append(got, ids(p.Owners(k, tt.n)))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("owners = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestPlacementOrderIndependent checks that the whole owner table, not
// just a few keys, is the same whatever order the members come in.
func TestPlacementOrderIndependent(t *testing.T) {
	weighted := mkMembers(20, "w-")
	for i := range weighted {
		weighted[i].Weight = 1 + i%4
	}
	tests := []struct {
		name    string
		members []Member
	}{
		{"abcde", []Member{mA, mB, mC, mD, mE}},
		{"32 equal", mkMembers(32, "node-")},
		{"20 weighted", weighted},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := mustPlacement(t, Config{}, tt.members)
			for i := 0; i < 5; i++ {
				perm := slices.Clone(tt.members)
				if i == 0 {
					slices.Reverse(perm)
				} else {
					rng.Shuffle(len(perm), func(a, b int) { perm[a], perm[b] = perm[b], perm[a] })
				}
				p := mustPlacement(t, Config{}, perm)
				if !slices.Equal(p.owners, ref.owners) || !slices.Equal(p.members, ref.members) {
					t.Fatalf("permutation %d gives a different placement", i)
				}
			}
			if !slices.IsSortedFunc(ref.Members(), func(a, b Member) int { return strings.Compare(a.ID, b.ID) }) {
				t.Errorf("Members() not sorted by ID: %v", ref.Members())
			}
		})
	}
}

func TestNewPlacementRejects(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		members []Member
		want    error
	}{
		{"duplicate id", Config{}, []Member{mA, mB, mA}, ErrDuplicateMember},
		{"duplicate id other addr", Config{}, []Member{mA, {ID: "node-a", Addr: "h:1", Weight: 1}}, ErrDuplicateMember},
		{"empty id", Config{}, []Member{mA, {Addr: "h:1", Weight: 1}}, ErrInvalidMember},
		{"empty addr", Config{}, []Member{{ID: "x", Weight: 1}}, ErrInvalidMember},
		{"weight 0", Config{}, []Member{{ID: "x", Addr: "h:1"}}, ErrInvalidMember},
		{"weight negative", Config{}, []Member{{ID: "x", Addr: "h:1", Weight: -1}}, ErrInvalidMember},
		{"weight too big", Config{}, []Member{{ID: "x", Addr: "h:1", Weight: MaxWeight + 1}}, ErrInvalidMember},
		{"mixed placement versions", Config{}, []Member{mA, {ID: "y", Addr: "h:1", Weight: 1, PlacementVersion: 2}}, ErrInvalidMember},
		{"load below 1", Config{Load: 0.9}, []Member{mA}, ErrInvalidConfig},
		{"load NaN", Config{Load: math.NaN()}, []Member{mA}, ErrInvalidConfig},
		{"load Inf", Config{Load: math.Inf(1)}, []Member{mA}, ErrInvalidConfig},
		{"negative partitions", Config{PartitionCount: -1}, []Member{mA}, ErrInvalidConfig},
		{"too many partitions", Config{PartitionCount: maxPartitionCount + 1}, []Member{mA}, ErrInvalidConfig},
		{"negative replicas", Config{MaxReplicas: -3}, []Member{mA}, ErrInvalidConfig},
		{"too many replicas", Config{MaxReplicas: maxReplicas + 1}, []Member{mA}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlacement(tt.cfg, tt.members)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if p != nil {
				t.Fatalf("got a placement with an error")
			}
		})
	}
}

func TestConfigValidateDefaults(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil || c != (Config{}) {
		t.Fatalf("Validate of the zero Config: %v, left %+v", err, c)
	}
	c.EnsureDefaults()
	want := Config{PartitionCount: DefaultPartitionCount, Load: DefaultLoad, MaxReplicas: DefaultMaxReplicas}
	if c != want {
		t.Fatalf("defaults = %+v, want %+v", c, want)
	}
	c = Config{PartitionCount: 271, Load: 1.5, MaxReplicas: 2}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil || c.PartitionCount != 271 || c.Load != 1.5 || c.MaxReplicas != 2 {
		t.Fatalf("explicit values changed: %+v, %v", c, err)
	}
}

func TestPlacementEmpty(t *testing.T) {
	for _, p := range []*Placement{nil, mustPlacement(t, Config{}, nil), mustPlacement(t, Config{}, []Member{})} {
		if got := p.Owners("k", 3); got != nil {
			t.Errorf("Owners = %v, want nil", got)
		}
		if p.Len() != 0 || len(p.Members()) != 0 || len(p.Shares()) != 0 {
			t.Errorf("empty placement not empty: len=%d members=%v shares=%v", p.Len(), p.Members(), p.Shares())
		}
		if part := p.Partition("k"); part < 0 || part >= DefaultPartitionCount {
			t.Errorf("Partition = %d", part)
		}
	}
	p := mustPlacement(t, Config{}, []Member{mA, mB})
	for _, n := range []int{0, -1} {
		if got := p.Owners("k", n); got != nil {
			t.Errorf("Owners(n=%d) = %v, want nil", n, got)
		}
	}
}

// TestPlacementOwnersInvariants: owners are distinct, Owners(k,1)[0] is the
// primary, longer lists extend shorter ones (also past MaxReplicas, where
// the slow path runs), and the length is min(n, Len()).
func TestPlacementOwnersInvariants(t *testing.T) {
	weighted := mkMembers(12, "w-")
	for i := range weighted {
		weighted[i].Weight = 1 + i%3
	}
	tests := []struct {
		name    string
		cfg     Config
		members []Member
	}{
		{"2 members", Config{}, []Member{mA, mB}},
		{"5 members", Config{}, []Member{mA, mB, mC, mD, mE}},
		{"12 weighted", Config{}, weighted},
		{"32 members, 5 replicas", Config{MaxReplicas: 5}, mkMembers(32, "node-")},
		{"small partition count", Config{PartitionCount: 13}, mkMembers(8, "node-")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlacement(t, tt.cfg, tt.members)
			for i := 0; i < 2000; i++ {
				key := fmt.Sprintf("vol/chunks/%d", i)
				all := p.Owners(key, p.Len()+3)
				if len(all) != p.Len() {
					t.Fatalf("len(Owners(%q, %d)) = %d, want %d", key, p.Len()+3, len(all), p.Len())
				}
				seen := map[string]bool{}
				for _, m := range all {
					if seen[m.ID] {
						t.Fatalf("Owners(%q) has %q twice: %v", key, m.ID, ids(all))
					}
					seen[m.ID] = true
				}
				for n := 1; n <= p.Len(); n++ {
					got := p.Owners(key, n)
					if !slices.Equal(got, all[:n]) {
						t.Fatalf("Owners(%q, %d) = %v, not a prefix of %v", key, n, ids(got), ids(all))
					}
				}
				if prim := p.owners[p.Partition(key)*p.replicas]; p.members[prim] != all[0] {
					t.Fatalf("Owners(%q,1)[0] = %v, primary is %v", key, all[0], p.members[prim])
				}
			}
		})
	}
}

// refRing is consistent's hash ring, rebuilt the way consistent.New builds
// it (a map from vnode hash to unit, last added wins, and a sorted slice of
// all hashes). It is the reference for TestReplicaWalkMatchesConsistent and
// shares no code with vnodeRing.
type refRing struct {
	sorted []uint64
	ring   map[uint64]string // vnode hash -> unit name
}

func newRefRing(units []string, vnodes int) refRing {
	r := refRing{ring: map[uint64]string{}}
	for _, u := range units {
		for i := 0; i < vnodes; i++ {
			h := xxhash.Sum64([]byte(fmt.Sprintf("%d:%s", i, u)))
			r.ring[h] = u
			r.sorted = append(r.sorted, h)
		}
	}
	sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i] < r.sorted[j] })
	return r
}

// start is where distributePartitions starts looking for part's owner.
func (r refRing) start(part int) int {
	bs := make([]byte, 8)
	binary.LittleEndian.PutUint64(bs, uint64(part))
	key := xxhash.Sum64(bs)
	idx := sort.Search(len(r.sorted), func(i int) bool { return r.sorted[i] >= key })
	if idx >= len(r.sorted) {
		idx = 0
	}
	return idx
}

// TestReplicaWalkMatchesConsistent checks the owner table against consistent
// and against a direct reference of the documented ranking.
//
//   - The primary must be consistent's partition owner.
//   - Replaying consistent's bounded-load pass (distributeWithLoad) on the
//     reference ring must give consistent's owner for every partition. So
//     the reference ring is consistent's ring.
//   - p.vnodes must be that ring, by member.
//   - The full ranking (slow path) and the precomputed rows must equal the
//     reference walk: primary, then distinct members clockwise from the
//     partition's position, skipping the primary.
func TestReplicaWalkMatchesConsistent(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		members []Member
	}{
		{"weighted 6", Config{}, []Member{mA, mB, mC, mD, mE, {ID: "node-f", Addr: "h:1", Weight: 3}}},
		// Load 1.0 forces many partitions past full units.
		{"32 load 1.0, 4 replicas", Config{Load: 1, MaxReplicas: 4, PartitionCount: 1009}, mkMembers(32, "node-")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlacement(t, tt.cfg, tt.members)
			cfg := p.Config()
			var units []consistent.Member
			var names []string
			byUnit := map[string]uint16{}
			for i, m := range p.Members() {
				for j := 0; j < m.Weight; j++ {
					u := &unit{name: fmt.Sprintf("%s#%d", m.ID, j)}
					units = append(units, u)
					names = append(names, u.name)
					byUnit[u.name] = uint16(i)
				}
			}
			c := consistent.New(units, consistent.Config{
				Hasher: xxhasher{}, PartitionCount: cfg.PartitionCount, ReplicationFactor: vnodesPerUnit, Load: cfg.Load,
			})
			ref := newRefRing(names, vnodesPerUnit)

			if len(p.vnodes) != len(ref.sorted) {
				t.Fatalf("len(vnodes) = %d, consistent ring has %d", len(p.vnodes), len(ref.sorted))
			}
			for i, h := range ref.sorted {
				if p.vnodes[i] != byUnit[ref.ring[h]] {
					t.Fatalf("vnodes[%d] = member %d, reference ring has %s", i, p.vnodes[i], ref.ring[h])
				}
			}

			avgLoad := math.Ceil(float64(cfg.PartitionCount) / float64(len(units)) * cfg.Load)
			loads := map[string]float64{}
			overflow := 0
			for part := 0; part < cfg.PartitionCount; part++ {
				owner := c.GetPartitionOwner(part).String()
				start := ref.start(part)
				if got := int(p.partStart[part]); got != start {
					t.Fatalf("partition %d: partStart = %d, reference = %d", part, got, start)
				}
				// distributeWithLoad, replayed.
				idx := start
				for loads[ref.ring[ref.sorted[idx]]]+1 > avgLoad {
					idx = (idx + 1) % len(ref.sorted)
				}
				if u := ref.ring[ref.sorted[idx]]; u != owner {
					t.Fatalf("partition %d: replayed owner %s, consistent %s", part, u, owner)
				}
				loads[owner]++
				if idx != start {
					overflow++
				}

				want := []uint16{byUnit[owner]}
				for i := 0; i < len(ref.sorted); i++ {
					m := byUnit[ref.ring[ref.sorted[(start+i)%len(ref.sorted)]]]
					if !slices.Contains(want, m) {
						want = append(want, m)
					}
				}
				if len(want) != p.Len() {
					t.Fatalf("partition %d: reference walk found %d of %d members", part, len(want), p.Len())
				}
				got := p.walk(part, p.owners[part*p.replicas], make([]uint16, 0, p.Len()), make([]bool, p.Len()))
				if !slices.Equal(got, want) {
					t.Fatalf("partition %d: walk = %v, reference = %v", part, got, want)
				}
				if row := p.owners[part*p.replicas : (part+1)*p.replicas]; !slices.Equal(row, want[:p.replicas]) {
					t.Fatalf("partition %d: owners row = %v, reference = %v", part, row, want[:p.replicas])
				}
			}
			t.Logf("%d of %d partitions placed past a full unit", overflow, cfg.PartitionCount)
			for _, k := range pinnedKeys {
				if got, want := p.Partition(k), c.FindPartitionID([]byte(k)); got != want {
					t.Errorf("Partition(%q) = %d, consistent = %d", k, got, want)
				}
			}
		})
	}
}

// TestWalkCompletesMissingMember: if hash collisions hid every virtual node
// of a member (2^-64 odds per pair), walk still returns every member, the
// hidden ones last in ID order.
func TestWalkCompletesMissingMember(t *testing.T) {
	p := mustPlacement(t, Config{}, []Member{mA, mB, mC, mD, mE})
	const hidden = 1 // node-b
	for i, m := range p.vnodes {
		if m == hidden {
			p.vnodes[i] = 0
		}
	}
	for part := 0; part < 50; part++ {
		prim := p.owners[part*p.replicas]
		if prim == hidden {
			continue
		}
		got := p.walk(part, prim, make([]uint16, 0, p.Len()), make([]bool, p.Len()))
		if len(got) != p.Len() || got[len(got)-1] != hidden {
			t.Fatalf("partition %d: walk = %v, want all %d members ending with %d", part, got, p.Len(), hidden)
		}
	}
}

// TestPlacementFallbackSpread measures where a dead member's partitions go:
// to their second owners, which take the fallback reads. For each weight-1
// member X it counts, over the partitions X owns as primary, how many
// distinct second owners there are and the largest share any single one
// takes. The fair share is 1/(N-1).
//
// A member's partitions lie in about vnodesPerUnit arcs of the ring, and
// each arc's partitions share one second owner. Arc sizes vary, so one
// second owner can take a large share, and once N-1 exceeds the number of
// arcs the fair share is out of reach. The old ranking (unit names in hash
// order) gave every weight-1 member exactly one second owner, share 1.0
// ((N-1)x fair). Measured over six ID sets ("node-", "n", "cache-",
// "host-x-", "10.0.0.", "pod-abc-"):
//
//	N   worst share       mean of max share  min distinct
//	8   0.32-0.61 (2.3-4.3x)  0.28-0.38 (2.0-2.6x)  5-6 of 7
//	32  0.30-0.46 (9.4-14x)   0.21-0.23 (6.6-7.2x)  10-13 of 31
//
// The bounds below sit above every measured value, and far below the old
// ranking's. The test also checks what the ranking is for: after X leaves,
// the new primary of a partition is almost always its old second owner
// (measured 93-100%; the old ranking gave 0-18%). So fallback reads warm
// the cache that will own the data after the rebuild.
func TestPlacementFallbackSpread(t *testing.T) {
	tests := []struct {
		n                 int
		maxWorst, maxMean float64 // bounds on the largest single share, in multiples of 1/(N-1)
		minDistinct       int
	}{
		{n: 8, maxWorst: 5, maxMean: 3, minDistinct: 4},
		{n: 32, maxWorst: 17, maxMean: 8.5, minDistinct: 8},
	}
	const minAgree = 0.85
	for _, tt := range tests {
		for _, prefix := range []string{"node-", "cache-", "host-x-"} {
			t.Run(fmt.Sprintf("%d/%s", tt.n, prefix), func(t *testing.T) {
				p := mustPlacement(t, Config{}, mkMembers(tt.n, prefix))
				R := p.replicas
				second := make([][]int, tt.n) // second[x][y]: partitions with primary x and second owner y
				for i := range second {
					second[i] = make([]int, tt.n)
				}
				secLoad := make([]int, tt.n)
				for part := 0; part < p.cfg.PartitionCount; part++ {
					second[p.owners[part*R]][p.owners[part*R+1]]++
					secLoad[p.owners[part*R+1]]++
				}
				fair := 1 / float64(tt.n-1)
				worst, sum, minDistinct := 0.0, 0.0, tt.n
				for x, row := range second {
					distinct, top := 0, 0
					for _, c := range row {
						if c > 0 {
							distinct++
						}
						top = max(top, c)
					}
					share := float64(top) / float64(p.primaries[x])
					worst = max(worst, share)
					sum += share
					minDistinct = min(minDistinct, distinct)
				}
				mean := sum / float64(tt.n)
				avgLoad := float64(p.cfg.PartitionCount) / float64(tt.n)

				var agree, total int
				for _, dead := range []int{0, tt.n / 2} {
					q := mustPlacement(t, Config{}, slices.Delete(slices.Clone(p.members), dead, dead+1))
					for part := 0; part < p.cfg.PartitionCount; part++ {
						if int(p.owners[part*R]) != dead {
							continue
						}
						total++
						if p.members[p.owners[part*R+1]].ID == q.members[q.owners[part*q.replicas]].ID {
							agree++
						}
					}
				}
				agreed := float64(agree) / float64(total)

				t.Logf("N=%d %s: largest second-owner share worst %.3f (%.2fx fair) mean %.3f (%.2fx fair); distinct second owners >= %d of %d; second-owner load max/avg %.2f; second owner = primary after leave %.2f",
					tt.n, prefix, worst, worst/fair, mean, mean/fair, minDistinct, tt.n-1, float64(slices.Max(secLoad))/avgLoad, agreed)
				if worst > tt.maxWorst*fair {
					t.Errorf("a single second owner takes %.3f of a member's partitions, %.2fx fair; bound %.1fx", worst, worst/fair, tt.maxWorst)
				}
				if mean > tt.maxMean*fair {
					t.Errorf("mean largest second-owner share %.3f, %.2fx fair; bound %.1fx", mean, mean/fair, tt.maxMean)
				}
				if minDistinct < tt.minDistinct {
					t.Errorf("a member has only %d distinct second owners, want >= %d", minDistinct, tt.minDistinct)
				}
				if agreed < minAgree {
					t.Errorf("second owner became the primary after a leave for %.2f of partitions, want >= %.2f", agreed, minAgree)
				}
			})
		}
	}
}

// TestPlacementLoadBound: no member holds more than
// Weight*ceil(Load*PartitionCount/units) partitions as primary. That is
// consistent's per-unit bound, summed over the member's units.
func TestPlacementLoadBound(t *testing.T) {
	mixed := mkMembers(40, "mixed-")
	for i := range mixed {
		mixed[i].Weight = []int{1, 2, 4, 8}[i%4]
	}
	tests := []struct {
		name    string
		cfg     Config
		members []Member
	}{
		{"3", Config{}, mkMembers(3, "node-")},
		{"8", Config{}, mkMembers(8, "node-")},
		{"32", Config{}, mkMembers(32, "node-")},
		{"100", Config{}, mkMembers(100, "node-")},
		{"40 mixed weights", Config{}, mixed},
		{"32 load 1.05", Config{Load: 1.05}, mkMembers(32, "node-")},
		{"32 load 1.0", Config{Load: 1}, mkMembers(32, "node-")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlacement(t, tt.cfg, tt.members)
			units := 0
			for _, m := range p.members {
				units += m.Weight
			}
			P := p.cfg.PartitionCount
			perUnitCap := math.Ceil(p.cfg.Load * float64(P) / float64(units))
			total, minPU, maxPU := 0, math.Inf(1), 0.0
			for i, m := range p.members {
				got := p.primaries[i]
				total += got
				if float64(got) > float64(m.Weight)*perUnitCap {
					t.Errorf("%s (weight %d) owns %d partitions, cap %v", m.ID, m.Weight, got, float64(m.Weight)*perUnitCap)
				}
				pu := float64(got) / float64(m.Weight)
				minPU, maxPU = min(minPU, pu), max(maxPU, pu)
			}
			if total != P {
				t.Fatalf("primaries sum to %d, want %d", total, P)
			}
			var sum float64
			for _, s := range p.Shares() {
				sum += s
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("shares sum to %v", sum)
			}
			avg := float64(P) / float64(units)
			t.Logf("partitions per weight unit: avg %.1f, min %.0f (%.2f avg), max %.0f (%.2f avg), cap %.0f",
				avg, minPU, minPU/avg, maxPU, maxPU/avg, perUnitCap)
		})
	}
}

// TestPlacementWeightedShare: share grows in proportion to weight.
func TestPlacementWeightedShare(t *testing.T) {
	t.Run("one weight-2 among 8 weight-1", func(t *testing.T) {
		ms := mkMembers(9, "node-")
		ms[4].Weight = 2
		sh := mustPlacement(t, Config{}, ms).Shares()
		heavy := sh[ms[4].ID]
		ratio := heavy / ((1 - heavy) / 8)
		t.Logf("weight-2 share %.4f = %.2fx the mean weight-1 share", heavy, ratio)
		if ratio < 1.7 || ratio > 2.3 {
			t.Errorf("weight-2 member gets %.2fx a weight-1 share, want ~2 (1.7..2.3)", ratio)
		}
	})
	t.Run("16 weight-2 and 16 weight-1", func(t *testing.T) {
		ms := mkMembers(32, "node-")
		for i := 0; i < len(ms); i += 2 {
			ms[i].Weight = 2
		}
		sh := mustPlacement(t, Config{}, ms).Shares()
		var s1, s2 float64
		for _, m := range ms {
			if m.Weight == 2 {
				s2 += sh[m.ID]
			} else {
				s1 += sh[m.ID]
			}
		}
		t.Logf("weight-2 group holds %.2fx the share of the weight-1 group", s2/s1)
		if r := s2 / s1; r < 1.8 || r > 2.2 {
			t.Errorf("weight-2 group share ratio %.2f, want ~2 (1.8..2.2)", r)
		}
	})
}

// movementKeys are the keys used to measure movement: 100k block keys over
// a few volumes.
func movementKeys() []string {
	keys := make([]string, 100_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08x-0000-4000-8000-000000000000/chunks/%d/%d/%d_%d_4194304", i%7, i/1000, i/100, i, i%16)
	}
	return keys
}

// moved returns the fraction of keys whose primary owner differs between a
// and b, and the fraction of the moved keys whose new owner is not in a
// (that is, keys that went to a joiner).
func moved(a, b *Placement, keys []string) (frac, toNew float64) {
	old := map[string]bool{}
	for _, m := range a.members {
		old[m.ID] = true
	}
	var mv, tn int
	for _, k := range keys {
		pa := a.members[a.owners[a.Partition(k)*a.replicas]].ID
		pb := b.members[b.owners[b.Partition(k)*b.replicas]].ID
		if pa != pb {
			mv++
			if !old[pb] {
				tn++
			}
		}
	}
	return float64(mv) / float64(len(keys)), float64(tn) / math.Max(1, float64(mv))
}

// TestPlacementMovement measures the fraction of 100k keys whose primary
// owner changes when one member joins or leaves. Ideal consistent hashing
// moves 1/(N+1) of keys on a join and 1/N on a leave. consistent redoes the
// bounded-load pass from scratch, so a change can also push overflow
// partitions between old members. maxMovementRatio is the bound on
// moved/ideal. It was set from measurement: over 5 joiners and 5 leavers per
// size, the worst join was 1.37x (N=100) and the worst leave 1.62x (N=100).
//
// On a join, most moved keys must land on the new member: the bound is
// >= 60%, and the measured range was 71-100%.
func TestPlacementMovement(t *testing.T) {
	const (
		maxMovementRatio = 2.0
		minToNew         = 0.60
		samples          = 5
	)
	keys := movementKeys()
	for _, n := range []int{3, 8, 32, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			base := mkMembers(n, "node-")
			p := mustPlacement(t, Config{}, base)
			var joinSum, joinMax, toNewMin, toNewSum, leaveSum, leaveMax float64
			toNewMin = 1
			for s := 0; s < samples; s++ {
				joiner := Member{ID: fmt.Sprintf("joiner-%d", s), Addr: "10.9.9.9:7070", Weight: 1}
				pj := mustPlacement(t, Config{}, append(slices.Clone(base), joiner))
				frac, toNew := moved(p, pj, keys)
				r := frac * float64(n+1)
				joinSum += r
				joinMax = max(joinMax, r)
				toNewSum += toNew
				toNewMin = min(toNewMin, toNew)
				if r > maxMovementRatio {
					t.Errorf("join %s: %.4f of keys moved, %.2fx ideal %.4f", joiner.ID, frac, r, 1/float64(n+1))
				}
				if toNew < minToNew {
					t.Errorf("join %s: only %.2f of moved keys went to the joiner", joiner.ID, toNew)
				}

				leaver := s * n / samples
				pl := mustPlacement(t, Config{}, slices.Delete(slices.Clone(base), leaver, leaver+1))
				frac, _ = moved(p, pl, keys)
				r = frac * float64(n)
				leaveSum += r
				leaveMax = max(leaveMax, r)
				if r > maxMovementRatio {
					t.Errorf("leave %s: %.4f of keys moved, %.2fx ideal %.4f", base[leaver].ID, frac, r, 1/float64(n))
				}
			}
			t.Logf("N=%d join: mean %.2fx max %.2fx ideal %.4f, to-joiner mean %.2f min %.2f; leave: mean %.2fx max %.2fx ideal %.4f",
				n, joinSum/samples, joinMax, 1/float64(n+1), toNewSum/samples, toNewMin, leaveSum/samples, leaveMax, 1/float64(n))
		})
	}
}

// TestPlacementFingerprint pins a digest of a whole owner table. Any change
// to the algorithm, the hash, vnodesPerUnit or the consistent library shows
// up here. Such a change needs a PlacementVersion bump: nodes on different
// versions would disagree on owners.
func TestPlacementFingerprint(t *testing.T) {
	ms := mkMembers(32, "node-")
	for i := range ms {
		ms[i].Weight = 1 + i%3
	}
	p := mustPlacement(t, Config{}, ms)
	d := xxhash.New()
	for _, o := range p.owners {
		d.Write([]byte{byte(o), byte(o >> 8)})
	}
	const want = uint64(0x7fc870fb65094321)
	if got := d.Sum64(); got != want {
		t.Fatalf("owner table digest = %#x, want %#x", got, want)
	}
}
