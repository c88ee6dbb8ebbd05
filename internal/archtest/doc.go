// Package archtest owns the check that the code keeps the shape
// docs/design.md draws: every package of the module is in the design's
// package map, and each imports only packages of lower layers. It has no
// code besides its test.
package archtest
