package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tockd/tock/master"
	"github.com/urfave/cli/v2"
)

// ctlHosts is `tock ctl hosts`: the live hosts of a JetStream cluster and
// the shards each holds, then this host's leases.
func ctlHosts(c *cli.Context, cl *ctlClient) error {
	var hr master.HostsReply
	b, err := cl.get("/hosts", &hr)
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(b)
	}
	writeHosts(os.Stdout, hr.Cluster, time.Now())
	return nil
}

func writeHosts(out io.Writer, cs *master.ClusterStats, now time.Time) {
	if cs == nil {
		fmt.Fprintln(out, "not a cluster")
		return
	}
	sync := ""
	if !cs.Synced {
		sync = " (buckets not read yet)"
	}
	fmt.Fprintf(out, "cluster %s, %d hosts, target %d shards each, lease ttl %s%s\n",
		cs.Cluster, len(cs.Hosts), cs.Target, time.Duration(cs.LeaseTTLMs)*time.Millisecond, sync)
	for _, h := range cs.Hosts {
		me := " "
		if h.Self {
			me = "*"
		}
		up := ""
		if !h.Started.IsZero() {
			up = ", up " + now.Sub(h.Started).Round(time.Second).String()
		}
		link := ""
		if h.Link != "" {
			link = ", link " + h.Link
			if h.LinkError != "" {
				link += " (" + h.LinkError + ")"
			}
		}
		fmt.Fprintf(out, "%s %-12s %-21s %2d shards [%s]%s%s\n", me, h.Host, h.Addr, len(h.Shards), shardList(h.Shards), up, link)
	}
	if len(cs.Unowned) > 0 {
		fmt.Fprintf(out, "  unowned: [%s]\n", shardList(cs.Unowned))
	}
	if len(cs.Owned) == 0 {
		return
	}
	fmt.Fprintln(out, "leases of this host:")
	for _, o := range cs.Owned {
		served := ""
		if o.Served {
			served = " served"
		}
		fmt.Fprintf(out, "  shard %3d  %-9s epoch %-12d lease age %5.0f ms  deadline in %6.0f ms  stream seq %d%s\n",
			o.Shard, o.State, o.Epoch, o.LeaseAgeMs, o.DeadlineInMs, o.StreamSeq, served)
	}
}
