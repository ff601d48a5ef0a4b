package quiesce_test

import "syscall"

const syscallECONNREFUSED = syscall.ECONNREFUSED
