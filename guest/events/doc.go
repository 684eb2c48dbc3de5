// Package events writes a job's event stream inside the guest: Writer
// numbers, stamps, masks and appends events (the format is
// internal/contract's), and Splitter turns process output of any size or
// encoding into log lines with bounded memory.
package events
