// Package catalogue holds HeyGen's lists (avatars, avatar groups, voices)
// in memory and answers list and get calls from them.
//
// The machinery is generic: a [Cache] per resource crawls HeyGen (its
// partitions side by side, within bounds that stop a looping or runaway
// list), keeps an immutable [Snapshot] (sorted by id, indexed, pre-encoded
// for the wire), serves keyset pages with sealed page tokens, knows how
// stale it is, shares one crawl among any number of cold callers, backs
// off after a failed crawl, and looks up ids it lacks once however many
// callers ask (remembering NOT_FOUND for a while). In a fleet it shares
// snapshots through a [Shared] store so one replica crawls for all.
//
// A [Resource] is only what differs between HeyGen's lists: how to crawl
// and convert one, its filter, how to fetch one item. Each lives in a file
// of its own (avatars.go, voices.go). Handlers see a [Reader], which is
// either a [Cache] or a [PassThrough] that sends every call to HeyGen; they
// never need to know which.
//
// The package has no gRPC server code: it returns plain errors
// ([FieldError], [DisabledError], [StaleError], [ColdError], [BoundError],
// or the HeyGen client's) that the server maps to statuses.
package catalogue
