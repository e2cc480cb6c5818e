package store

import (
	"encoding/binary"
	"unsafe"
)

// ReplayJobs is ReplayFrom applying every record to jobs, for a shard's
// boot and read-ahead: it is what Apply on each decoded record does, but
// job and removal records (nearly all of a log) are read in place rather
// than decoded into a Record with its own copy of the id, so that a
// replay allocates nothing per record (the store copies the id it keeps).
func ReplayJobs(path string, offset int64, jobs *Jobs, repair bool) (ReplayResult, error) {
	res, _, err := replayFromInto(path, offset, nil, jobs, repair)
	return res, err
}

// ReplayShardJobs is ReplayShard applying every record to jobs in place,
// as ReplayJobs does: RecordOwner records are not applied (Apply ignores
// them); the last one read is returned.
func ReplayShardJobs(path string, offset int64, jobs *Jobs, repair bool) (ReplayResult, Owner, error) {
	return replayFromInto(path, offset, nil, jobs, repair)
}

// applyPayload is Apply(DecodeRecord(p)): the same result and the same
// error for every p. A well-formed job or job removal record is applied
// from the payload's bytes; anything else goes through DecodeRecord (a
// status record with its outcome and attempt, rules, owners). A RecordOwner
// is stored in *owner when owner is not nil.
func (j *Jobs) applyPayload(p []byte, owner *Owner) error {
	if len(p) >= 3 {
		n := int(binary.BigEndian.Uint16(p[1:3]))
		switch RecordType(p[0]) {
		case RecordJob: // str id, i64 execution, u8 status
			if st := Status(p[len(p)-1]); len(p) == 3+n+9 && st.Valid() {
				j.upsert(view(p[3:3+n]), int64(binary.BigEndian.Uint64(p[3+n:])), st)
				return nil
			}
		case RecordJobRemoval: // str id
			if len(p) == 3+n {
				j.Remove(view(p[3:]))
				return nil
			}
		}
	}
	rec, err := DecodeRecord(p)
	if err != nil {
		return err
	}
	if rec.Type == RecordOwner && owner != nil {
		*owner = rec.Owner
	}
	j.Apply(rec)
	return nil
}

// view is b as a string without a copy; b must not change while it is used.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
