package ring

import (
	"errors"
	"fmt"
	"math"
)

const (
	// DefaultPartitionCount is the default Config.PartitionCount. It is a
	// prime, so key hashes spread evenly over partitions. With 7919
	// partitions, each of 100 nodes owns ~79 partitions. A partition of a
	// 10 TiB working set is ~1.3 GiB, which keeps rebalancing fine-grained.
	DefaultPartitionCount = 7919

	// DefaultLoad is the default Config.Load (bounded-load factor).
	DefaultLoad = 1.25

	// DefaultMaxReplicas is the default Config.MaxReplicas.
	DefaultMaxReplicas = 3

	// maxPartitionCount bounds Config.PartitionCount. The owner table costs
	// PartitionCount*MaxReplicas*2 bytes plus PartitionCount*4 bytes.
	maxPartitionCount = 1 << 20

	// maxReplicas bounds Config.MaxReplicas.
	maxReplicas = 64
)

// ErrInvalidConfig reports a Config that fails validation.
var ErrInvalidConfig = errors.New("ring: invalid config")

// Config holds the placement parameters. Every node of a ring must use the
// same Config. Any change to it, and any change to this package's algorithm,
// needs a new Member.PlacementVersion.
type Config struct {
	// PartitionCount is the number of partitions, fixed cluster-wide
	// (default DefaultPartitionCount, 7919, a prime).
	PartitionCount int
	// Load is the bounded-load factor: the most partitions a weight unit
	// holds is ceil(Load*avg) (default DefaultLoad, 1.25).
	Load float64
	// MaxReplicas is how many owners are precomputed per partition
	// (default DefaultMaxReplicas, 3).
	MaxReplicas int
}

// EnsureDefaults sets every zero field of c to its default.
func (c *Config) EnsureDefaults() {
	if c.PartitionCount == 0 {
		c.PartitionCount = DefaultPartitionCount
	}
	if c.Load == 0 {
		c.Load = DefaultLoad
	}
	if c.MaxReplicas == 0 {
		c.MaxReplicas = DefaultMaxReplicas
	}
}

// Validate checks c as EnsureDefaults would leave it (a zero field stands
// for its default); it does not modify c. It reports every problem at once.
// Errors wrap ErrInvalidConfig.
func (c *Config) Validate() error {
	d := *c
	d.EnsureDefaults()
	var errs []error
	if d.PartitionCount < 1 || d.PartitionCount > maxPartitionCount {
		errs = append(errs, fmt.Errorf("partition count %d out of range [1, %d]", d.PartitionCount, maxPartitionCount))
	}
	// Load < 1 could leave no room for some partition; consistent would
	// panic. Units*ceil(Load*P/units) >= P holds for every Load >= 1.
	if math.IsNaN(d.Load) || math.IsInf(d.Load, 0) || d.Load < 1 {
		errs = append(errs, fmt.Errorf("load %v must be a finite number >= 1", d.Load))
	}
	if d.MaxReplicas < 1 || d.MaxReplicas > maxReplicas {
		errs = append(errs, fmt.Errorf("max replicas %d out of range [1, %d]", d.MaxReplicas, maxReplicas))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
