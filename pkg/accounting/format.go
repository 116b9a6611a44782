package accounting

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the record for people.
func (j *JobRecord) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(k, f string, a ...any) { fmt.Fprintf(tw, "%s\t"+f+"\n", append([]any{k}, a...)...) }
	p("job", "%d", j.JobID)
	p("nodes", "%d (reported %d, unreachable %d, partial %d)", j.Nodes, j.Reported, j.Unreachable, j.Partial)
	p("lwk user cpu", "%.3f s", j.UserSeconds)
	p("lwk system cpu", "%.3f s", j.SystemSeconds)
	p("max memory (node)", "%s", bytesString(float64(j.MaxMemoryBytes)))
	for _, k := range sortedKeys(j.MaxRSSByPageSize) {
		p("max rss "+k+" pages", "%s", bytesString(float64(j.MaxRSSByPageSize[k])))
	}
	p("max threads (node)", "%d", j.MaxThreads)
	p("samples", "%d", j.Samples)
	if len(j.Events) > 0 {
		var ev []string
		for _, k := range sortedKeys(j.Events) {
			ev = append(ev, fmt.Sprintf("%s=%d", k, j.Events[k]))
		}
		p("events", "%s", strings.Join(ev, " "))
	}
	if len(j.EventNodes) > 0 {
		p("nodes with events", "%s", strings.Join(j.EventNodes, ","))
	}
	for _, k := range sortedKeys(j.Perf) {
		p("perf "+k, "%d", j.Perf[k])
	}
	if len(j.UnreachableNodes) > 0 {
		p("unreachable", "%s", strings.Join(j.UnreachableNodes, ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(j.PerNode) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tOS\tUSER_S\tSYS_S\tMAX_MEM\tTHREADS\tSAMPLES\tBOOT_S\tTEARDOWN_S\tFINAL")
		for _, n := range j.PerNode {
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%s\t%d\t%d\t%.2f\t%.2f\t%s\n", n.Node, n.OS, n.UserSeconds, n.SystemSeconds,
				bytesString(float64(n.MaxMemoryBytes)), n.MaxThreads, n.Samples, n.BootSeconds, n.TeardownSeconds, n.Final)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(j.Stats) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PER NODE\tMIN\tMEDIAN\tMAX\tLOWEST\tHIGHEST")
		for _, k := range sortedKeys(j.Stats) {
			s := j.Stats[k]
			if s == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%g\t%g\t%g\t%s\t%s\n", k, s.Min, s.Median, s.Max, nodeValues(s.Low), nodeValues(s.High))
		}
		return tw.Flush()
	}
	return nil
}

func nodeValues(v []NodeValue) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%s=%g", x.Node, x.Value))
	}
	return strings.Join(s, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func bytesString(b float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}
