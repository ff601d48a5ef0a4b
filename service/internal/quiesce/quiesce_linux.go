package quiesce

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// synFilter is a classic BPF socket filter for a TCP listener. A socket filter on a TCP socket
// sees the segment from its TCP header on; byte 13 holds the flags. It drops a segment with SYN
// set and ACK clear (a new connection request) and keeps everything else, including the final
// ACK of a handshake already under way, so that one completes into the accept queue.
var synFilter = []unix.SockFilter{
	{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 13},
	{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0x12}, // SYN|ACK
	{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 0x02, Jt: 0, Jf: 1},
	{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop
	{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // keep all of it
}

func refuseSYN(fd int) error {
	prog := unix.SockFprog{Len: uint16(len(synFilter)), Filter: &synFilter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		if p, perr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); perr == nil && p == unix.IPPROTO_MPTCP {
			return fmt.Errorf("quiesce: a Multipath TCP listener takes no socket filter (listen with quiesce.Listen): %w", err)
		}
		return fmt.Errorf("quiesce: attach SYN filter: %w", err)
	}
	return nil
}

// queued is the length of a listening socket's accept queue: for a socket in LISTEN state the
// kernel reports it as tcpi_unacked.
func queued(fd int) (int, error) {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, fmt.Errorf("quiesce: TCP_INFO: %w", err)
	}
	return int(info.Unacked), nil
}
