// Package protocol is tock's client line protocol, the one ztick speaks
// (docs/protocol.md): framing, tokenizing, command parsing and reply formatting.
//
// The package is pure: it reads from an io.Reader handed to it and appends
// replies to byte slices; sockets, auth and routing belong to the server.
//
// Invariant: every byte sequence a client can send maps either to a Command
// or to an *Error whose Reason is one line of short lower-case text, and every
// reply this package formats is exactly one LF-terminated line whose tokens
// re-tokenize to the values that were written (see Tokenize for the rules).
//
// A line is at most maxLine bytes, not counting its LF or CRLF terminator.
// Longer lines are skipped up to the next LF and reported as ErrLineTooLong,
// with memory bounded by maxLine whatever the client sends.
//
// The protocol cannot carry a raw LF inside a token: the Reader splits lines
// at every LF, quoted or not (a deliberate difference from ztick, whose
// tokenizer keeps LF inside quotes). Reply formatting therefore writes an LF
// inside a value as a space.
//
// Deliberate fixes over ztick, each answered with "<rid> ERROR <reason>"
// instead of silence or a wrong value: unknown, short and blank commands;
// unparsable timestamps (ztick: 0, run now); CRLF (ztick: CR kept in the last
// token); an unquoted multi-word shell command (ztick kept only the first
// word, tock joins the words with single spaces).
package protocol
