package ring

import (
	"fmt"
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
