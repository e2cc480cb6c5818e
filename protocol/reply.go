package protocol

import (
	"strconv"

	"github.com/tockd/tock/store"
)

// The Append functions write one LF-terminated reply line to dst and return
// the extended slice; they allocate only when dst must grow. The request id
// and every value that is one token are written so that the line
// re-tokenizes to them: bare when possible, otherwise quoted (ztick wrote
// them raw, which broke on spaces). A request id of "" writes the bare form
// used for AUTH replies and unreadable lines (`OK`, `ERROR <reason>`).

// AppendOK appends `<rid> OK`.
func AppendOK(dst []byte, rid string) []byte {
	return append(appendRID(dst, rid), "OK\n"...)
}

// AppendOKBody appends `<rid> OK <body>`; body is written as is (it may hold
// several tokens), with CR and LF turned into spaces. An empty body gives
// `<rid> OK`.
func AppendOKBody(dst []byte, rid, body string) []byte {
	dst = append(appendRID(dst, rid), "OK"...)
	if body != "" {
		dst = appendText(append(dst, ' '), body)
	}
	return append(dst, '\n')
}

// AppendError appends `<rid> ERROR <reason>`, or `ERROR <reason>` when rid is
// "". CR and LF in reason are turned into spaces, so the reply stays one
// line.
func AppendError(dst []byte, rid, reason string) []byte {
	dst = append(appendRID(dst, rid), "ERROR"...)
	if reason != "" {
		dst = appendText(append(dst, ' '), reason)
	}
	return append(dst, '\n')
}

// AppendGet appends GET's reply `<rid> OK <status> <ns>`.
func AppendGet(dst []byte, rid string, st store.Status, ns int64) []byte {
	dst = append(appendRID(dst, rid), "OK "...)
	dst = append(dst, st.String()...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ns, 10)
	return append(dst, '\n')
}

// AppendQueryLine appends one QUERY result `<rid> <job> <status> <ns>`; the
// list ends with AppendOK.
func AppendQueryLine(dst []byte, rid, jobID string, st store.Status, ns int64) []byte {
	dst = AppendToken(appendRID(dst, rid), jobID)
	dst = append(dst, ' ')
	dst = append(dst, st.String()...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ns, 10)
	return append(dst, '\n')
}

// AppendRuleLine appends one LISTRULES result
// `<rid> <rule> <pattern> <type> <args...>`, the arguments as RULE SET takes
// them (ztick.md §1.5: awf inputs as `--input k=v`, a shell command as one
// token). Passwords in http URLs, amqp DSNs and redis URLs are removed (see
// RedactURL); the list ends with AppendOK.
func AppendRuleLine(dst []byte, rid string, r store.Rule) []byte {
	dst = AppendToken(appendRID(dst, rid), r.ID)
	dst = append(dst, ' ')
	dst = AppendToken(dst, r.Pattern)
	dst = append(dst, ' ')
	dst = appendRunner(dst, r.Runner, true)
	return append(dst, '\n')
}

// AppendStatLine appends one STAT result `<rid> <key> <value>`; the list
// ends with AppendOK.
func AppendStatLine(dst []byte, rid, key, value string) []byte {
	dst = AppendToken(appendRID(dst, rid), key)
	dst = append(dst, ' ')
	dst = AppendToken(dst, value)
	return append(dst, '\n')
}

func appendRID(dst []byte, rid string) []byte {
	if rid == "" {
		return dst
	}
	return append(AppendToken(dst, rid), ' ')
}

// appendText appends free text with CR and LF replaced by spaces.
func appendText(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' || c == '\r' {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// FormatCommand renders c as a request line without terminator, quoting
// tokens as needed; it is the client side of Parse, and Parse(FormatCommand(c))
// gives back every Command that Parse returned. Only the fields of c.Op are
// written; a shell command is one token, awf inputs get their `--input`, and
// URLs are written in full (nothing is redacted). A value holding an LF,
// which no line can carry, has it written as a space.
func FormatCommand(c Command) string {
	b := make([]byte, 0, 64)
	if c.Op == OpAuth && c.BareAuth {
		b = AppendToken(append(b, "AUTH "...), c.Secret)
		return string(b)
	}
	b = AppendToken(b, c.RID)
	b = append(b, ' ')
	b = append(b, c.Op.String()...)
	switch c.Op {
	case OpSet:
		b = AppendToken(append(b, ' '), c.ID)
		b = strconv.AppendInt(append(b, ' '), c.Execution, 10)
	case OpGet, OpRemove, OpRemoveRule, OpInfo:
		b = AppendToken(append(b, ' '), c.ID)
	case OpQuery:
		if c.Prefix != "" {
			b = AppendToken(append(b, ' '), c.Prefix)
		}
	case OpRuleSet:
		b = AppendToken(append(b, ' '), c.Rule.ID)
		b = AppendToken(append(b, ' '), c.Rule.Pattern)
		b = appendRunner(append(b, ' '), c.Rule.Runner, false)
	case OpAuth:
		b = AppendToken(append(b, ' '), c.Secret)
	}
	return string(b)
}
