package ring

import (
	"fmt"
	"slices"
	"testing"
)

func BenchmarkOwners(b *testing.B) {
	p := mustPlacement(b, Config{}, mkMembers(32, "node-"))
	keys := movementKeys()[:4096]
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("members=32/n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if len(p.Owners(keys[i&4095], n)) != n {
					b.Fatal("short owner list")
				}
				i++
			}
		})
	}
	// n beyond MaxReplicas takes the unprecomputed walk.
	b.Run("members=32/n=8", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p.Owners(keys[i&4095], 8)
			i++
		}
	})
}

func BenchmarkNewPlacement(b *testing.B) {
	for _, tc := range []struct{ members, weight int }{{3, 1}, {32, 1}, {100, 1}, {100, 4}, {100, MaxWeight}} {
		ms := mkMembers(tc.members, "node-")
		for i := range ms {
			ms[i].Weight = tc.weight
		}
		b.Run(fmt.Sprintf("members=%d/weight=%d", tc.members, tc.weight), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewPlacement(Config{}, ms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlacementVnodeSweep measures balance, movement and build time
// for other vnodesPerUnit values: it records why 20 was chosen (see
// vnodesPerUnit). Metrics: min/avg is the least loaded member's primary
// partitions over the average; join-x and leave-x are the keys moved by one
// join or leave over the ideal 1/(N+1) and 1/N. ns/op is the build.
func BenchmarkPlacementVnodeSweep(b *testing.B) {
	keys := movementKeys()[:20_000]
	for _, vn := range []int{10, 20, 40, 80} {
		for _, n := range []int{32, 100} {
			b.Run(fmt.Sprintf("vnodes=%d/members=%d", vn, n), func(b *testing.B) {
				base := mkMembers(n, "node-")
				var p *Placement
				for b.Loop() {
					var err error
					if p, err = newPlacement(Config{}, base, vn); err != nil {
						b.Fatal(err)
					}
				}
				pj, err := newPlacement(Config{}, append(slices.Clone(base), Member{ID: "joiner", Addr: "h:1", Weight: 1}), vn)
				if err != nil {
					b.Fatal(err)
				}
				pl, err := newPlacement(Config{}, base[1:], vn)
				if err != nil {
					b.Fatal(err)
				}
				fj, _ := moved(p, pj, keys)
				fl, _ := moved(p, pl, keys)
				avg := float64(p.cfg.PartitionCount) / float64(n)
				b.ReportMetric(float64(slices.Min(p.primaries))/avg, "min/avg")
				b.ReportMetric(fj*float64(n+1), "join-x")
				b.ReportMetric(fl*float64(n), "leave-x")
			})
		}
	}
}
