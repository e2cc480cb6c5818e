package store

import (
	"hash/crc32"
	"reflect"
	"strconv"
)

// Builders for records in tests, so tables read as the records they hold.

func jobRec(id string, exec int64, st Status) Record {
	return Record{Type: RecordJob, Job: Job{ID: id, Execution: exec, Status: st}}
}

func statusRec(id string, exec int64, st Status, o *Outcome) Record {
	return Record{Type: RecordStatus, Job: Job{ID: id, Execution: exec, Status: st, Outcome: o}}
}

func ruleRec(id, pattern string, kind RunnerKind, args ...string) Record {
	return Record{Type: RecordRule, Rule: Rule{ID: id, Pattern: pattern, Runner: Runner{Kind: kind, Args: args}}}
}

func jobRemoval(id string) Record  { return Record{Type: RecordJobRemoval, ID: id} }
func ruleRemoval(id string) Record { return Record{Type: RecordRuleRemoval, ID: id} }

// sampleRecords has every record type and every runner kind.
func sampleRecords() []Record {
	return []Record{
		jobRec("toto", 1605457800000000000, Planned),
		jobRec("", -1, Failed),
		jobRec("app.é", 0, Triggered),
		statusRec("toto", 1605457800000000000, Triggered, nil),
		statusRec("toto", 1605457800000000000, Executed, &Outcome{StartedAt: 1605457800000000001, Duration: 1500, ExitCode: 0, HTTPStatus: 0, Output: "hi\n"}),
		statusRec("web.1", 7, Failed, &Outcome{StartedAt: -5, Duration: 30e9, ExitCode: -1, HTTPStatus: 503, Error: "http 503"}),
		ruleRec("r", "a.", RunnerShell, "true"),
		ruleRec("q", "amqp.", RunnerAMQP, "amqp://u:p@host:5672/v", "ex", "rk"),
		ruleRec("d", "x.", RunnerDirect, "/bin/echo", "-n", "hi"),
		ruleRec("d0", "y.", RunnerDirect, "/bin/true"),
		ruleRec("w", "wf.", RunnerAWF, "deploy", "env=prod", "v=2"),
		ruleRec("w0", "wf0.", RunnerAWF, "noop"),
		ruleRec("h", "web.", RunnerHTTP, "POST", "https://example.com/hook"),
		ruleRec("rd", "redis.", RunnerRedis, "redis://localhost:6379/0", "PUBLISH", "events"),
		ruleRec("e", "", RunnerShell, ""),
		jobRemoval("x"),
		ruleRemoval("r"),
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func crc32Castagnoli(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// equalRecords compares record lists, nil and empty alike.
func equalRecords(a, b []Record) bool {
	return (len(a) == 0 && len(b) == 0) || reflect.DeepEqual(a, b)
}
