package store

import (
	"encoding/binary"
	"fmt"
	"math"
)

// runnerArity is how many Args each kind carries: fixed kinds have exactly
// fixed strs in ztick's body; variadic kinds (direct, awf) have one leading
// str and then a u16-counted list, so they need at least one.
var runnerArity = [...]struct {
	n        int
	variadic bool
}{
	RunnerShell:  {1, false},
	RunnerAMQP:   {3, false},
	RunnerDirect: {1, true},
	RunnerAWF:    {1, true},
	RunnerHTTP:   {2, false},
	RunnerRedis:  {3, false},
}

// Validate checks that the runner can be stored: a known kind, the argument
// count ztick's body layout has for that kind, and every argument short
// enough for a u16 length. It checks shape only; whether a URL or method
// makes sense is the protocol's business.
func (rn Runner) Validate() error {
	if !rn.Kind.Valid() {
		return fmt.Errorf("%w: unknown runner kind %d", ErrInvalidRecord, uint8(rn.Kind))
	}
	a := runnerArity[rn.Kind]
	switch {
	case a.variadic && len(rn.Args) < a.n:
		return fmt.Errorf("%w: %s runner needs at least %d argument, has %d", ErrInvalidRecord, rn.Kind, a.n, len(rn.Args))
	case a.variadic && len(rn.Args)-1 > math.MaxUint16:
		return fmt.Errorf("%w: %s runner has %d arguments, max %d", ErrInvalidRecord, rn.Kind, len(rn.Args), math.MaxUint16+1)
	case !a.variadic && len(rn.Args) != a.n:
		return fmt.Errorf("%w: %s runner needs exactly %d arguments, has %d", ErrInvalidRecord, rn.Kind, a.n, len(rn.Args))
	}
	for i, arg := range rn.Args {
		if err := checkStr(fmt.Sprintf("%s argument %d", rn.Kind, i), arg); err != nil {
			return err
		}
	}
	return nil
}

// appendRunner appends u8 kind and the kind's body. rn must be valid.
func appendRunner(dst []byte, rn Runner) []byte {
	dst = append(dst, uint8(rn.Kind))
	if runnerArity[rn.Kind].variadic {
		dst = appendStr(dst, rn.Args[0])
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(rn.Args)-1))
		for _, arg := range rn.Args[1:] {
			dst = appendStr(dst, arg)
		}
		return dst
	}
	for _, arg := range rn.Args {
		dst = appendStr(dst, arg)
	}
	return dst
}

// runner decodes u8 kind and its body into Args in types.go's order.
func (r *fieldReader) runner() Runner {
	kind := RunnerKind(r.u8("runner kind"))
	if r.err != nil {
		return Runner{}
	}
	if !kind.Valid() {
		r.fail("unknown runner kind %d", uint8(kind))
		return Runner{}
	}
	a := runnerArity[kind]
	if a.variadic {
		first := r.str("runner argument")
		return Runner{Kind: kind, Args: r.strs("runner argument", first)}
	}
	args := make([]string, a.n)
	for i := range args {
		args[i] = r.str("runner argument")
	}
	return Runner{Kind: kind, Args: args}
}
