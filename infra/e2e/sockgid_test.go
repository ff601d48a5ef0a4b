//go:build e2e

package e2e

import (
	"os"
	"syscall"
)

func sockGID(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Gid
	}
	return ^uint32(0)
}
