package catalogue

import (
	"context"
	"sync"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Readers are the readers of every resource the gateway lists, cached or
// passed through; the server's handlers take them and nothing else.
type Readers struct {
	Avatars Reader[*heygenv1.Avatar, AvatarFilter]
	Groups  Reader[*heygenv1.AvatarGroup, GroupFilter]
	Voices  Reader[*heygenv1.Voice, VoiceFilter]
}

// Set is the catalogue: one [Cache] per resource, sharing one set of
// options.
type Set struct {
	Avatars *Cache[*heygenv1.Avatar, avatarKeys, AvatarFilter]
	Groups  *Cache[*heygenv1.AvatarGroup, groupKeys, GroupFilter]
	Voices  *Cache[*heygenv1.Voice, voiceKeys, VoiceFilter]
}

// New returns the catalogue of every cached resource, empty: it fills on
// the first read of each resource, or when [Set.Run] starts. The caches
// share the bounds on concurrent HeyGen calls (Options.CrawlConcurrency,
// Options.ColdPassThrough).
func New(client *heygen.Client, opts Options) *Set {
	opts = opts.withDefaults()
	return &Set{
		Avatars: NewCache(Avatars(client), opts),
		Groups:  NewCache(AvatarGroups(client), opts),
		Voices:  NewCache(Voices(client, voiceEngines(opts)), opts),
	}
}

func voiceEngines(opts Options) []string {
	if len(opts.VoiceEngines) > 0 {
		return opts.VoiceEngines
	}
	return DefaultVoiceEngines
}

// caches lists the set's caches, for what is done to all of them.
func (s *Set) caches() []interface {
	Run(context.Context)
	Refresh(context.Context) error
	Usable() bool
	Name() string
} {
	return []interface {
		Run(context.Context)
		Refresh(context.Context) error
		Usable() bool
		Name() string
	}{s.Avatars, s.Groups, s.Voices}
}

// Run keeps every resource fresh (see [Cache.Run]) until ctx is done.
func (s *Set) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range s.caches() {
		wg.Go(func() { c.Run(ctx) })
	}
	wg.Wait()
}

// Refresh crawls every resource now and returns the first error.
func (s *Set) Refresh(ctx context.Context) error {
	var first error
	for _, c := range s.caches() {
		if err := c.Refresh(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Usable reports whether every resource has a snapshot within the maximum
// staleness.
func (s *Set) Usable() bool {
	for _, c := range s.caches() {
		if !c.Usable() {
			return false
		}
	}
	return true
}

// Readers returns the cached readers.
func (s *Set) Readers() Readers {
	return Readers{Avatars: s.Avatars, Groups: s.Groups, Voices: s.Voices}
}

// PassThroughReaders returns readers that send every call to HeyGen, for a
// gateway whose catalogue is switched off.
func PassThroughReaders(client *heygen.Client) Readers {
	return Readers{
		Avatars: NewPassThrough(Avatars(client)),
		Groups:  NewPassThrough(AvatarGroups(client)),
		Voices:  NewPassThrough(Voices(client, nil)),
	}
}
