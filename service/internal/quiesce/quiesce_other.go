//go:build !linux

package quiesce

func refuseSYN(int) error { return ErrUnsupported }

func queued(int) (int, error) { return 0, ErrUnsupported }
