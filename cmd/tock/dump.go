package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tockd/tock/protocol"
	"github.com/tockd/tock/store"
	"github.com/urfave/cli/v2"
)

// tock dump (docs/files.md) prints the records of a logfile, tock's or ztick's
// (ztick.md §4.3), without ever writing to it: a torn tail is reported, not
// trimmed as store.Replay would.

// followPoll is how often --follow looks for appended records.
const followPoll = 250 * time.Millisecond

// textOutputTail is how much of an outcome's output the text form shows
// (from its end); --format json shows all that is stored.
const textOutputTail = 256

func dumpCommand() *cli.Command {
	return &cli.Command{
		Name:      "dump",
		Usage:     "print the records of a tock or ztick logfile (read-only)",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "text, or json for one JSON object per line"},
			&cli.BoolFlag{Name: "compact", Usage: "only the last entry per id (a job with its current status); ids whose last entry is a removal are left out"},
			&cli.BoolFlag{Name: "follow", Usage: "after the dump, print records appended to the file until interrupted"},
			&cli.BoolFlag{Name: "verify", Usage: "check the whole file: print 'ok: N records, M bytes', or the first problem and exit 1"},
		},
		Action: runDump,
	}
}

func runDump(c *cli.Context) error {
	path, enc, err := dumpArgs(c)
	if err != nil {
		return cli.Exit("usage: "+err.Error(), exitUsage)
	}
	d := &dumper{path: path, out: bufio.NewWriter(c.App.Writer), errw: c.App.ErrWriter, enc: enc}
	if err := d.open(); err != nil {
		return d.fail(err)
	}
	defer func() { _ = d.f.Close() }() // read-only: a close error cannot lose anything; d.f changes when --follow reopens
	if c.Bool("verify") {
		return d.verify()
	}
	ctx := c.Context
	if c.Bool("follow") {
		// Caught from the start, so an interrupt during the initial dump
		// also ends --follow quietly.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	if c.Bool("compact") {
		err = d.dumpCompact()
	} else {
		err = d.dump()
	}
	if err == nil && c.Bool("follow") {
		err = d.follow(ctx)
	}
	if ferr := d.out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return d.fail(err)
	}
	return nil
}

// dumpArgs checks the command line and returns the file and the encoder.
func dumpArgs(c *cli.Context) (string, dumpEncoder, error) {
	args := c.Args().Slice()
	if len(args) != 1 {
		for _, a := range args[min(1, len(args)):] {
			if strings.HasPrefix(a, "-") {
				return "", nil, fmt.Errorf("flags go before FILE: tock dump [--format text|json] [--compact] [--follow] [--verify] FILE")
			}
		}
		return "", nil, fmt.Errorf("dump takes one FILE, got %d arguments", len(args))
	}
	var enc dumpEncoder
	switch f := c.String("format"); f {
	case "text":
		enc = appendDumpTextRecord
	case "json":
		enc = appendDumpJSONRecord
	default:
		return "", nil, fmt.Errorf("unknown --format %q (want text or json)", f)
	}
	if c.Bool("verify") && (c.Bool("compact") || c.Bool("follow") || c.String("format") != "text") {
		return "", nil, errors.New("--verify prints a report only; it takes no --compact, --follow or --format")
	}
	return args[0], enc, nil
}

// dumper reads one logfile and prints its records.
type dumper struct {
	path string
	f    *os.File
	st   os.FileInfo        // of f, to notice the path being replaced
	fr   *store.FrameReader // nil until the format is known
	fmt  store.Format       // once fr is set
	dec  func([]byte) (store.Record, error)
	out  *bufio.Writer
	errw io.Writer
	enc  dumpEncoder
	line []byte // reused encode buffer
}

// open opens the file read-only, with the messages of ztick's dump for a
// missing or unreadable file.
func (d *dumper) open() error {
	f, err := os.Open(d.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file not found: %s", d.path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied: %s", d.path)
	case err != nil:
		return err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file: %s", d.path)
	}
	if err != nil {
		_ = f.Close() // read-only, and the stat error is what matters
		return err
	}
	d.f, d.st, d.fr = f, st, nil
	return nil
}

// fail prints err as `error: ...` and exits 1.
func (d *dumper) fail(err error) error {
	_ = d.out.Flush() // best effort: what was printed before the error
	fmt.Fprintf(d.errw, "error: %v\n", err)
	return cli.Exit("", exitRefused)
}

func (d *dumper) warnf(format string, args ...any) {
	_ = d.out.Flush() // keep warnings in place among the records on a terminal
	fmt.Fprintf(d.errw, "warning: "+format+"\n", args...)
}

func (d *dumper) size() (int64, error) {
	st, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// detect sets up the frame reader once the file's first bytes tell its
// format. It reports false while they cannot (an empty file, or a torn
// tock header).
func (d *dumper) detect(size int64) (bool, error) {
	if d.fr != nil {
		return true, nil
	}
	prefix := make([]byte, min(size, int64(store.FormatProbeSize)))
	n, err := d.f.ReadAt(prefix, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	format, ok, err := store.DetectFormat(prefix[:n])
	if err != nil {
		return false, fmt.Errorf("%s: %w", d.path, err)
	}
	if !ok {
		return false, nil
	}
	d.fr, d.fmt = store.NewFrameReader(d.f, format), format
	d.dec = store.DecodeRecord
	if format == store.FormatZtick {
		d.dec = store.DecodeZtickRecord
	}
	return true, nil
}

// read passes every record from the reader's position to the end of a
// file of size bytes to emit. Undecodable frames are skipped with a
// warning, and so is damage that intact frames follow. A torn tail is
// warned about unless live (--follow), where it is normally a write in
// progress: the reader stays before it and tries again next time.
func (d *dumper) read(size int64, live bool, emit func(store.Record)) error {
	if ok, err := d.detect(size); err != nil || !ok {
		if err == nil && !live && size > 0 {
			d.warnf("partial file header (%d bytes) ignored", size)
		}
		return err
	}
	for {
		fm, err := d.fr.Next(size)
		var fe *store.FrameError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &fe) && d.notALog(fe.Index) && !live:
			return d.notALogError(fe.Reason)
		case errors.As(err, &fe) && fe.Tail():
			if !live {
				d.warnf("partial trailing frame (%d bytes at offset %d) ignored: %s", fe.Bytes, fe.Offset, fe.Reason)
			}
			return nil
		case errors.As(err, &fe):
			d.warnf("skipped damaged frame %d at offset %d (%d bytes): %s", fe.Index, fe.Offset, fe.Bytes, fe.Reason)
			d.fr.Skip(fe)
			continue
		case err != nil:
			return fmt.Errorf("%s: %w", d.path, err)
		}
		rec, err := d.dec(fm.Payload)
		if err != nil && d.notALog(fm.Index) && !live {
			return d.notALogError(err.Error())
		}
		if err != nil {
			d.warnf("failed to decode frame %d at offset %d: %v", fm.Index, fm.Offset, err)
			continue
		}
		emit(rec)
	}
}

// print writes one record as a line.
func (d *dumper) print(rec store.Record) {
	d.line = d.enc(d.line[:0], rec)
	_, _ = d.out.Write(d.line) // a write error sticks in d.out and is returned by Flush
}

func (d *dumper) dump() error {
	size, err := d.size()
	if err != nil {
		return err
	}
	return d.read(size, false, d.print)
}

func (d *dumper) dumpCompact() error {
	size, err := d.size()
	if err != nil {
		return err
	}
	var c dumpCompactor
	if err := d.read(size, false, c.add); err != nil {
		return err
	}
	c.each(d.print)
	return nil
}

// verify checks every frame and record of the file and reports the first
// problem, or how many records and bytes are good. A torn tail is what a
// crash leaves and what the next start trims: a warning, not a failure.
func (d *dumper) verify() error {
	size, err := d.size()
	if err != nil {
		return d.fail(err)
	}
	if ok, err := d.detect(size); err != nil || !ok {
		if err != nil {
			return d.corrupt(0, err.Error())
		}
		if size > 0 {
			d.warnf("torn file header (%d bytes)", size)
		}
		return d.verified(0, 0)
	}
	records := 0
	for {
		fm, err := d.fr.Next(size)
		var fe *store.FrameError
		switch {
		case errors.Is(err, io.EOF):
			return d.verified(records, d.fr.Offset())
		case errors.As(err, &fe) && d.notALog(fe.Index):
			return d.fail(d.notALogError(fe.Reason))
		case errors.As(err, &fe) && fe.Tail():
			d.warnf("torn tail at offset %d (%d bytes): %s", fe.Offset, fe.Bytes, fe.Reason)
			return d.verified(records, fe.Offset)
		case errors.As(err, &fe):
			return d.corrupt(fe.Offset, fe.Reason)
		case err != nil:
			return d.fail(err)
		}
		if _, err := d.dec(fm.Payload); err != nil {
			if d.notALog(fm.Index) {
				return d.fail(d.notALogError(err.Error()))
			}
			return d.corrupt(fm.Offset, err.Error())
		}
		records++
	}
}

// notALog reports whether a bad frame at index means the file is not a
// logfile at all: a file without tock's header is read as ztick's, which
// has none, so only its first record can tell. (A ztick log torn inside its
// very first record looks the same, and holds nothing anyway.)
func (d *dumper) notALog(index int) bool { return d.fmt == store.FormatZtick && index == 0 }

func (d *dumper) notALogError(reason string) error {
	return fmt.Errorf("%s is not a tock or ztick logfile (no tock header, and its first bytes are not a ztick record: %s)", d.path, reason)
}

func (d *dumper) verified(records int, bytes int64) error {
	fmt.Fprintf(d.out, "ok: %d records, %d bytes\n", records, bytes)
	return d.out.Flush()
}

func (d *dumper) corrupt(off int64, reason string) error {
	fmt.Fprintf(d.errw, "corrupt record at offset %d: %s\n", off, reason)
	return cli.Exit("", exitRefused)
}

// follow prints records appended to the file until ctx ends. When the
// path is replaced (a compaction renames a new file over it) or the file
// shrinks, the new content is printed from its start.
func (d *dumper) follow(ctx context.Context) error {
	if err := d.out.Flush(); err != nil {
		return err
	}
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := d.poll(); err != nil {
			return err
		}
	}
}

func (d *dumper) poll() error {
	if st, err := os.Stat(d.path); err == nil && !os.SameFile(st, d.st) {
		old := d.f
		if err := d.open(); err != nil {
			return err
		}
		_ = old.Close() // read-only
		d.warnf("%s was replaced; printing the new file from its start", d.path)
	}
	size, err := d.size()
	if err != nil {
		return err
	}
	if d.fr != nil && size < d.fr.Offset() {
		d.warnf("%s shrank to %d bytes; printing it again from its start", d.path, size)
		d.fr = nil
	}
	if err := d.read(size, true, d.print); err != nil {
		return err
	}
	return d.out.Flush()
}

// dumpCompactor keeps the last entry per identifier, in the order of those
// last entries, like ztick's dump --compact: jobs and rules share one key
// space (ztick.md §11 item 4). A status record folds into the job it
// belongs to, as replay applies it: status always, outcome when it has one.
type dumpCompactor struct {
	recs []store.Record
	dead []bool
	at   map[string]int
}

func dumpRecordID(r store.Record) string {
	switch r.Type {
	case store.RecordJob, store.RecordStatus:
		return r.Job.ID
	case store.RecordRule:
		return r.Rule.ID
	}
	return r.ID
}

func (c *dumpCompactor) add(r store.Record) {
	id := dumpRecordID(r)
	prev, seen := c.at[id]
	if r.Type == store.RecordStatus {
		if seen && c.recs[prev].Type == store.RecordJob {
			c.recs[prev].Job.Status = r.Job.Status
			if r.Job.Outcome != nil {
				c.recs[prev].Job.Outcome = r.Job.Outcome
			}
		}
		return
	}
	if seen {
		c.dead[prev] = true
		if r.Type == store.RecordJob && c.recs[prev].Type == store.RecordJob {
			r.Job.Outcome = c.recs[prev].Job.Outcome // a SET keeps the last outcome
		}
	}
	if c.at == nil {
		c.at = make(map[string]int)
	}
	c.at[id] = len(c.recs)
	c.recs = append(c.recs, r)
	c.dead = append(c.dead, false)
}

// each passes the surviving entries to fn: a job as its SET with the
// current status, then a STATUS with its outcome if it has one.
func (c *dumpCompactor) each(fn func(store.Record)) {
	for i, r := range c.recs {
		if c.dead[i] || r.Type == store.RecordJobRemoval || r.Type == store.RecordRuleRemoval {
			continue
		}
		fn(r)
		if r.Type == store.RecordJob && r.Job.Outcome != nil {
			fn(store.Record{Type: store.RecordStatus, Job: r.Job})
		}
	}
}

// dumpEncoder appends one record as one line.
type dumpEncoder func(dst []byte, r store.Record) []byte

// appendDumpTextRecord writes the text form: the commands that made the
// records, tokens quoted where needed as in replies (ztick wrote them raw),
// rules as LISTRULES shows them (passwords removed).
func appendDumpTextRecord(b []byte, r store.Record) []byte {
	switch r.Type {
	case store.RecordJob, store.RecordStatus:
		if r.Type == store.RecordJob {
			b = append(b, "SET "...)
		} else {
			b = append(b, "STATUS "...)
		}
		b = protocol.AppendToken(b, r.Job.ID)
		b = strconv.AppendInt(append(b, ' '), r.Job.Execution, 10)
		b = append(append(b, ' '), r.Job.Status.String()...)
		if o := r.Job.Outcome; r.Type == store.RecordStatus && o != nil {
			b = appendDumpTextOutcome(b, o)
		}
	case store.RecordRule:
		b = protocol.AppendRuleLine(append(b, "RULE SET "...), "", r.Rule)
		b = b[:len(b)-1] // its LF
	case store.RecordJobRemoval:
		b = protocol.AppendToken(append(b, "REMOVE "...), r.ID)
	case store.RecordRuleRemoval:
		b = protocol.AppendToken(append(b, "REMOVERULE "...), r.ID)
	case store.RecordOwner:
		b = strconv.AppendUint(append(b, "OWNER epoch="...), r.Owner.Epoch, 10)
		b = appendDumpFileID(append(b, " file_id="...), r.Owner.FileID)
	}
	return append(b, '\n')
}

// appendDumpFileID writes a shard file's id (owner records, fencing) as 16
// hex digits.
func appendDumpFileID(b []byte, id uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, digits[(id>>uint(shift))&0xf])
	}
	return b
}

func appendDumpTextOutcome(b []byte, o *store.Outcome) []byte {
	b = append(b, " started_at="...)
	b = time.Unix(0, o.StartedAt).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, " duration="...)
	b = append(b, time.Duration(o.Duration).String()...)
	b = strconv.AppendInt(append(b, " exit_code="...), int64(o.ExitCode), 10)
	b = strconv.AppendInt(append(b, " http_status="...), int64(o.HTTPStatus), 10)
	b = strconv.AppendQuote(append(b, " error="...), o.Error)
	b = strconv.AppendQuote(append(b, " output="...), outputTail(o.Output, textOutputTail))
	if o.Attempt > 0 { // 0: logged by a tock that did not count attempts
		b = strconv.AppendUint(append(b, " attempt="...), uint64(o.Attempt), 10)
	}
	return b
}

// outputTail returns the last at most n bytes of s, cut at a rune start.
func outputTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return s[i:]
}

// dumpRunnerFields names a runner's arguments in the JSON form (ztick.md
// §4.3). For direct and awf the second name holds the list of the rest.
var dumpRunnerFields = [...][]string{
	store.RunnerShell:  {"command"},
	store.RunnerAMQP:   {"dsn", "exchange", "routing_key"},
	store.RunnerDirect: {"executable", "args"},
	store.RunnerAWF:    {"workflow", "inputs"},
	store.RunnerHTTP:   {"method", "url"},
	store.RunnerRedis:  {"url", "command", "key"},
}

// appendDumpJSONRecord writes ztick's NDJSON form, plus tock's status records.
func appendDumpJSONRecord(b []byte, r store.Record) []byte {
	switch r.Type {
	case store.RecordJob, store.RecordStatus:
		typ := `{"type":"set","identifier":`
		if r.Type == store.RecordStatus {
			typ = `{"type":"status","identifier":`
		}
		b = appendDumpJSONString(append(b, typ...), r.Job.ID)
		b = strconv.AppendInt(append(b, `,"execution":`...), r.Job.Execution, 10)
		b = appendDumpJSONString(append(b, `,"status":`...), r.Job.Status.String())
		if r.Type == store.RecordStatus {
			b = appendDumpJSONOutcome(append(b, `,"outcome":`...), r.Job.Outcome)
		}
	case store.RecordRule:
		b = appendDumpJSONString(append(b, `{"type":"rule_set","identifier":`...), r.Rule.ID)
		b = appendDumpJSONString(append(b, `,"pattern":`...), r.Rule.Pattern)
		b = appendDumpJSONRunner(append(b, `,"runner":`...), r.Rule.Runner)
	case store.RecordJobRemoval:
		b = appendDumpJSONString(append(b, `{"type":"remove","identifier":`...), r.ID)
	case store.RecordRuleRemoval:
		b = appendDumpJSONString(append(b, `{"type":"remove_rule","identifier":`...), r.ID)
	case store.RecordOwner:
		b = strconv.AppendUint(append(b, `{"type":"owner","epoch":`...), r.Owner.Epoch, 10)
		b = append(appendDumpFileID(append(b, `,"file_id":"`...), r.Owner.FileID), '"')
	}
	return append(b, "}\n"...)
}

func appendDumpJSONRunner(b []byte, rn store.Runner) []byte {
	b = appendDumpJSONString(append(b, `{"type":`...), rn.Kind.String())
	names := dumpRunnerFields[rn.Kind] // the decoder only returns known kinds
	for i, name := range names {
		b = appendDumpJSONString(append(b, ','), name)
		b = append(b, ':')
		if i == 1 && (rn.Kind == store.RunnerDirect || rn.Kind == store.RunnerAWF) {
			b = appendDumpJSONStrings(b, rn.Args[1:])
			break
		}
		b = appendDumpJSONString(b, redactRunnerArg(rn.Kind, i, rn.Args[i]))
	}
	return append(b, '}')
}

// redactRunnerArg removes the password from the URL arguments, as LISTRULES does.
func redactRunnerArg(k store.RunnerKind, i int, a string) string {
	if (k == store.RunnerHTTP && i == 1) || ((k == store.RunnerAMQP || k == store.RunnerRedis) && i == 0) {
		return protocol.RedactURL(a)
	}
	return a
}

func appendDumpJSONOutcome(b []byte, o *store.Outcome) []byte {
	if o == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"started_at":"`...)
	b = time.Unix(0, o.StartedAt).UTC().AppendFormat(b, time.RFC3339Nano)
	b = strconv.AppendInt(append(b, `","duration_ns":`...), o.Duration, 10)
	b = strconv.AppendInt(append(b, `,"exit_code":`...), int64(o.ExitCode), 10)
	b = strconv.AppendInt(append(b, `,"http_status":`...), int64(o.HTTPStatus), 10)
	b = appendDumpJSONString(append(b, `,"error":`...), o.Error)
	b = appendDumpJSONString(append(b, `,"output":`...), o.Output)
	if o.Attempt > 0 {
		b = strconv.AppendUint(append(b, `,"attempt":`...), uint64(o.Attempt), 10)
	}
	return append(b, '}')
}

func appendDumpJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendDumpJSONString(b, s)
	}
	return append(b, ']')
}

// appendDumpJSONString writes s as ztick's dump does: `"` `\` LF CR TAB
// escaped, other control bytes as \u00XX, everything else raw. Bytes that
// are not UTF-8 (tock ids are bytes) become U+FFFD, so every line stays
// valid JSON.
func appendDumpJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case c < utf8.RuneSelf:
			b = append(b, c)
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		i++
	}
	return append(b, '"')
}
