// Package csi will hold the CSI identity, controller and node services that
// mount models read-only through the ring. Nothing is implemented yet.
package csi
