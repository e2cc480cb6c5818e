package protocol

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tockd/tock/store"
)

// Op is the instruction of a Command.
type Op uint8

// The instructions of the line protocol. The zero Op is not an instruction.
const (
	// OpSet is `<rid> SET <job> <timestamp>`: plan a job (ID, Execution).
	OpSet Op = iota + 1
	// OpGet is `<rid> GET <job>`: the status and time of a job (ID).
	OpGet
	// OpQuery is `<rid> QUERY [<prefix>]`: every job whose id starts with
	// Prefix ("" = all).
	OpQuery
	// OpRemove is `<rid> REMOVE <job>` (ID).
	OpRemove
	// OpRuleSet is `<rid> RULE SET <rule> <pattern> <runner> <args...>`
	// (Rule; ID is Rule.ID).
	OpRuleSet
	// OpRemoveRule is `<rid> REMOVERULE <rule>` (ID).
	OpRemoveRule
	// OpListRules is `<rid> LISTRULES`.
	OpListRules
	// OpStat is `<rid> STAT`.
	OpStat
	// OpAuth is `AUTH <secret>` (BareAuth) or `<rid> AUTH <secret>`
	// (Secret).
	OpAuth
	// OpInfo is `<rid> INFO <job>` (ID), tock's own: GET plus the job's
	// shard, matching rule and last outcome (see info.go).
	OpInfo
)

var opNames = [...]string{
	OpSet: "SET", OpGet: "GET", OpQuery: "QUERY", OpRemove: "REMOVE",
	OpRuleSet: "RULE SET", OpRemoveRule: "REMOVERULE", OpListRules: "LISTRULES",
	OpStat: "STAT", OpAuth: "AUTH", OpInfo: "INFO",
}

// String returns the instruction as written on the wire ("SET", "RULE SET").
func (o Op) String() string {
	if o >= OpSet && int(o) < len(opNames) {
		return opNames[o]
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// MaxIDLen is the longest job id, rule id, pattern or runner argument: they
// are stored with a u16 length.
const MaxIDLen = 65535

// Command is one parsed request line. Only the fields of its Op are set.
type Command struct {
	// RID is the client's request id, echoed first on every reply line; ""
	// only for a bare AUTH.
	RID string
	Op  Op
	// ID is the job id (SET, GET, REMOVE) or the rule id (REMOVERULE,
	// RULE SET).
	ID string
	// Execution is the SET time in ns since the Unix epoch.
	Execution int64
	// Prefix is QUERY's job id prefix; "" matches every job.
	Prefix string
	// Rule is RULE SET's rule.
	Rule store.Rule
	// Secret is AUTH's secret.
	Secret string
	// BareAuth is set for `AUTH <secret>` without a request id; its replies
	// are a bare `OK` or `ERROR <reason>`.
	BareAuth bool
}

// Error is a line that is not a valid command. The server answers it with
// `<RID> ERROR <Reason>` (`ERROR <Reason>` when RID is "") and keeps the
// connection open.
type Error struct {
	// RID is the request id, "" when it could not be read.
	RID string
	// Reason is short lower-case text without newlines; user text in it is
	// quoted with %q.
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// Parse parses one line (without its terminator) into a Command.
//
// The first token is the request id and the second the instruction,
// case-sensitive: SET, GET, QUERY, REMOVE, RULE SET (two tokens),
// REMOVERULE, LISTRULES, STAT or AUTH. A line whose first token is AUTH is a
// bare `AUTH <secret>`. Tokens after a complete command are an error (ztick
// ignored them). Every other line yields an *Error whose reason names what
// was expected (docs/protocol.md, "Errors"); see the package tests for the
// reasons.
func Parse(line []byte) (Command, *Error) { return parse(line, true) }

// ParseRequest is Parse except that the first token is always the request
// id, so `AUTH x` is request id "AUTH" with instruction "x". ztick reads
// lines this way once a connection has authenticated, and when auth is off.
func ParseRequest(line []byte) (Command, *Error) { return parse(line, false) }

// usage is each instruction's grammar, quoted in error reasons.
var usage = map[Op]string{
	OpSet: "<rid> SET <job> <timestamp>", OpGet: "<rid> GET <job>", OpQuery: "<rid> QUERY [<prefix>]",
	OpRemove: "<rid> REMOVE <job>", OpRuleSet: "<rid> RULE SET <rule> <pattern> <runner> <args...>",
	OpRemoveRule: "<rid> REMOVERULE <rule>", OpListRules: "<rid> LISTRULES", OpStat: "<rid> STAT",
	OpAuth: "AUTH <secret> or <rid> AUTH <secret>", OpInfo: "<rid> INFO <job>",
}

// lookupOp finds the instruction at toks[0] (RULE SET takes two tokens) and
// returns it with the number of tokens it took, or 0.
func lookupOp(toks []string) (Op, int) {
	if toks[0] == "RULE" {
		if len(toks) > 1 && toks[1] == "SET" {
			return OpRuleSet, 2
		}
		return 0, 0
	}
	// A switch, not a loop over opNames: it runs twice per request line.
	switch toks[0] {
	case "SET":
		return OpSet, 1
	case "GET":
		return OpGet, 1
	case "QUERY":
		return OpQuery, 1
	case "REMOVE":
		return OpRemove, 1
	case "REMOVERULE":
		return OpRemoveRule, 1
	case "LISTRULES":
		return OpListRules, 1
	case "STAT":
		return OpStat, 1
	case "AUTH":
		return OpAuth, 1
	case "INFO":
		return OpInfo, 1
	}
	return 0, 0
}

// commandList is every instruction, for the reason of an unknown one.
func commandList() string {
	names := make([]string, 0, len(opNames))
	for op := OpSet; int(op) < len(opNames); op++ {
		if opNames[op] != "" {
			names = append(names, opNames[op])
		}
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// unknownCommand is the reason for toks (the instruction onwards), with a
// hint when the upper-cased text is an instruction.
func unknownCommand(toks []string) string {
	upper := make([]string, min(2, len(toks)))
	for i := range upper {
		upper[i] = strings.ToUpper(toks[i])
	}
	if op, n := lookupOp(upper); op != 0 {
		return fmt.Sprintf("unknown command %q: commands are upper case, did you mean %q?",
			strings.Join(toks[:n], " "), op.String())
	}
	if upper[0] == "RULE" {
		return fmt.Sprintf("unknown command %q: did you mean \"RULE SET\"?", strings.Join(toks[:len(upper)], " "))
	}
	return fmt.Sprintf("unknown command %q: want %s", toks[0], commandList())
}

// startsWithOp reports whether toks starts with an instruction.
func startsWithOp(toks []string) bool {
	if len(toks) == 0 {
		return false
	}
	op, _ := lookupOp(toks)
	return op != 0
}

func parse(line []byte, bareAuth bool) (Command, *Error) {
	var arr [16]string
	toks, err := Tokenize(line, arr[:0])
	if err != nil {
		rid := ""
		if len(toks) > 0 && !(bareAuth && toks[0] == "AUTH") {
			rid = toks[0]
		}
		return Command{}, &Error{RID: rid, Reason: err.Error()}
	}
	if len(toks) == 0 {
		return Command{}, &Error{Reason: "empty line"}
	}
	rid := toks[0]
	if bareAuth && rid == "AUTH" {
		switch {
		case len(toks) < 2:
			return Command{}, &Error{Reason: "missing secret: want " + usage[OpAuth]}
		case len(toks) > 2:
			return Command{}, &Error{Reason: trailing(toks[2], OpAuth)}
		}
		return Command{Op: OpAuth, Secret: toks[1], BareAuth: true}, nil
	}
	if rid == "" {
		return Command{}, &Error{Reason: "empty request id"}
	}
	// A line that starts with an instruction not followed by one forgot
	// its request id (`SET j 0`): say so rather than calling the job id an
	// unknown command.
	// ParseRequest's AUTH is a request id. RULE SET at the start is always
	// a missing id.
	if op, n := lookupOp(toks); op != 0 && op != OpAuth && (n == 2 || !startsWithOp(toks[n:])) {
		return Command{}, &Error{Reason: "missing request id: want " + usage[op]}
	}
	if len(toks) < 2 {
		return Command{}, &Error{RID: rid, Reason: "missing command: want <rid> <command> [<args>], commands: " + commandList()}
	}
	op, n := lookupOp(toks[1:])
	if op == 0 {
		return Command{}, &Error{RID: rid, Reason: unknownCommand(toks[1:])}
	}
	c := Command{RID: rid, Op: op}
	args := toks[1+n:]
	var reason string
	switch op {
	case OpSet:
		reason = parseSet(&c, args)
	case OpGet, OpRemove, OpInfo:
		c.ID, reason = jobID(args, op)
	case OpQuery:
		if len(args) > 0 {
			c.Prefix = args[0]
		}
		reason = atMost(args, 1, op)
	case OpRemoveRule:
		c.ID, reason = ruleID(args, op)
	case OpListRules, OpStat:
		reason = atMost(args, 0, op)
	case OpAuth:
		if len(args) == 0 {
			reason = "missing secret: want " + usage[OpAuth]
		} else {
			c.Secret = args[0]
			reason = atMost(args, 1, op)
		}
	case OpRuleSet:
		reason = parseRuleSet(&c, args)
	}
	if reason != "" {
		return Command{}, &Error{RID: rid, Reason: reason}
	}
	return c, nil
}

// trailing is the reason for a token after a complete command.
func trailing(tok string, op Op) string {
	return fmt.Sprintf("unexpected token %q after the command: want %s", tok, usage[op])
}

// atMost is the reason when args has more than n tokens, else "".
func atMost(args []string, n int, op Op) string {
	if len(args) > n {
		return trailing(args[n], op)
	}
	return ""
}

func parseSet(c *Command, args []string) string {
	var reason string
	if c.ID, reason = jobID(args[:min(1, len(args))], OpSet); reason != "" {
		return reason
	}
	ns, used, err := ParseTimestamp(args[1:])
	if err != nil {
		return err.Error()
	}
	if reason := atMost(args[1:], used, OpSet); reason != "" {
		return reason
	}
	c.Execution = ns
	return ""
}

// jobID reads the one job id of op's args.
func jobID(args []string, op Op) (string, string) {
	if len(args) == 0 {
		return "", "missing job id: want " + usage[op]
	}
	if len(args[0]) > MaxIDLen {
		return "", fmt.Sprintf("id too long (limit %d bytes)", MaxIDLen)
	}
	return args[0], atMost(args, 1, op)
}

// ruleID reads the rule id of op's args; REMOVERULE takes nothing after it.
func ruleID(args []string, op Op) (string, string) {
	if len(args) == 0 {
		return "", "missing rule id: want " + usage[op]
	}
	if len(args[0]) > MaxIDLen {
		return "", fmt.Sprintf("id too long (limit %d bytes)", MaxIDLen)
	}
	if op == OpRemoveRule {
		return args[0], atMost(args, 1, op)
	}
	return args[0], ""
}

// parseRuleSet reads `<rule> <pattern> <runner> <args...>`.
func parseRuleSet(c *Command, args []string) string {
	id, reason := ruleID(args, OpRuleSet)
	if reason != "" {
		return reason
	}
	switch {
	case len(args) < 2:
		return "missing pattern: want " + usage[OpRuleSet]
	case len(args[1]) > MaxIDLen:
		return fmt.Sprintf("pattern too long (limit %d bytes)", MaxIDLen)
	case len(args) < 3:
		return "missing runner: want " + usage[OpRuleSet] + ", runners: " + runnerList
	}
	runner, reason := parseRunner(args[2], args[3:])
	if reason != "" {
		return reason
	}
	c.ID = id
	c.Rule = store.Rule{ID: id, Pattern: args[1], Runner: runner}
	return ""
}
