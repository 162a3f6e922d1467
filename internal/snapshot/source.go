package snapshot

import "strings"

// Source names one part of a collection, read from its own files. A source
// that could not be read is recorded in Snapshot.Errors as "SOURCE: error"
// (AddError); a reader asks for a source's error by its constant
// (SourceError), never by searching an error's text.
type Source string

// The sources a collection reads.
const (
	SourceSockstat      Source = "sockstat"       // /proc/net/sockstat and sockstat6
	SourceLimits        Source = "limits"         // kernel limits under /proc/sys: tcp_mem, tcp_max_orphans, file-nr, nr_open, pid_max, threads-max
	SourceConntrack     Source = "conntrack"      // /proc/sys/net/netfilter/nf_conntrack_count and nf_conntrack_max
	SourceMeminfo       Source = "meminfo"        // /proc/meminfo
	SourceVMStat        Source = "vmstat"         // /proc/vmstat
	SourcePSI           Source = "psi"            // /proc/pressure
	SourceBeancounters  Source = "beancounters"   // /proc/user_beancounters (OpenVZ)
	SourceCgroups       Source = "cgroups"        // the cgroup hierarchies under /sys/fs/cgroup
	SourceProcesses     Source = "processes"      // /proc/PID, the fd walk and the socket tables
	SourceNetstat       Source = "netstat"        // /proc/net/netstat (TcpExt counters)
	SourceConntrackStat Source = "conntrack_stat" // /proc/net/stat/nf_conntrack (drop, early_drop)
	SourceKernelLog     Source = "kernel_log"     // /dev/kmsg
)

// AddError records that src could not be read.
func (s *Snapshot) AddError(src Source, err error) {
	s.Errors = append(s.Errors, string(src)+": "+err.Error())
}

// SourceError returns the error recorded for src, if any. A missing file is
// not an error; a malformed or unreadable one is.
func (s *Snapshot) SourceError(src Source) (string, bool) {
	for _, e := range s.Errors {
		if strings.HasPrefix(e, string(src)+": ") {
			return e, true
		}
	}
	return "", false
}
