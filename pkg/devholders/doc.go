// Package devholders finds the processes that have a given file open, by
// reading the /proc/<pid>/fd symlinks of procfs (proc(5)). The lifecycle uses
// it to find the mcexec proxies that hold an OS instance device open
// (/dev/mcosN with the real driver, DevDir/mcosN with the simulator), since
// the driver refuses IHK_DEVICE_DESTROY_OS while any such descriptor exists.
//
// Reading another user's fd directory needs root (or CAP_SYS_PTRACE);
// processes whose directory cannot be read are skipped, not reported.
package devholders
