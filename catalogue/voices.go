package catalogue

import (
	"context"
	"errors"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// This file is everything the catalogue knows about voices: how to crawl
// them, convert them, and filter them.

// DefaultVoiceEngines are the speech engines whose voices the catalogue
// indexes by default: the one HeyGen documents as a voice-list filter.
var DefaultVoiceEngines = []string{"starfish"}

var (
	voiceStatusFromHeyGen = map[string]heygenv1.VoiceStatus{
		"processing": heygenv1.VoiceStatus_VOICE_STATUS_PROCESSING,
		"complete":   heygenv1.VoiceStatus_VOICE_STATUS_COMPLETE,
		"failed":     heygenv1.VoiceStatus_VOICE_STATUS_FAILED,
	}
	voiceTypeFromHeyGen = map[string]heygenv1.Ownership{
		heygen.VoiceTypePublic:  heygenv1.Ownership_OWNERSHIP_PUBLIC,
		heygen.VoiceTypePrivate: heygenv1.Ownership_OWNERSHIP_PRIVATE,
	}
	voiceTypeToHeyGen = invert(voiceTypeFromHeyGen)
)

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// VoiceFromHeyGen converts a HeyGen voice (a list item or a voice's
// details). Ownership comes from the list it was in; details carry none,
// but only cloned (private) voices have a status.
func VoiceFromHeyGen(v *heygen.Voice) *heygenv1.Voice {
	out := &heygenv1.Voice{
		Id:                        v.VoiceID,
		Name:                      deref(v.Name),
		Language:                  deref(v.Language),
		Gender:                    deref(v.Gender),
		Ownership:                 enumOf(voiceTypeFromHeyGen, v.Type),
		PreviewAudioUrl:           v.PreviewAudioURL,
		SupportsPause:             deref(v.SupportPause),
		SupportsLocale:            deref(v.SupportLocale),
		SupportsInteractiveAvatar: v.SupportInteractiveAvatar,
		Status:                    enumOf(voiceStatusFromHeyGen, v.Status),
		StatusRaw:                 v.Status,
		FailureMessage:            v.FailureMessage,
		CreateTime:                timestampPtr(v.CreatedAt),
	}
	if v.Type == nil && v.Status != nil {
		out.Ownership = heygenv1.Ownership_OWNERSHIP_PRIVATE
	}
	return out
}

// VoiceFilter is a ListVoices request's filters; build it with [NewVoiceFilter].
type VoiceFilter struct {
	Ownership heygenv1.Ownership
	Language  string // lower case
	Gender    string // lower case
	Engine    string
	Query     string // lower case
}

// NewVoiceFilter takes a (validated) request's filters.
func NewVoiceFilter(req *heygenv1.ListVoicesRequest) VoiceFilter {
	return VoiceFilter{
		Ownership: req.GetOwnership(),
		Language:  strings.ToLower(req.GetLanguage()),
		Gender:    strings.ToLower(req.GetGender()),
		Engine:    req.GetEngine(),
		Query:     strings.ToLower(req.GetQuery()),
	}
}

type voiceKeys struct {
	text     string // lower-case name + "\x00" + id
	language string // lower case
	gender   string // lower case
	own      heygenv1.Ownership
	engines  []string
}

// detailConcurrency bounds the detail lookups of one page of cloned voices
// (a page is at most 100): within a crawl, the crawl's bound on calls at
// once applies too. Cloned voices cost a call each, and at 8 a page they
// were most of a cold crawl's time.
const detailConcurrency = 32

// voicePages pages through HeyGen's voices of one type (and engine and
// gender, if set). Cloned voices are completed with their details
// (status, failure message, creation time), which the list does not carry.
func voicePages(client *heygen.Client, typ, engine, gender string, details bool) func(context.Context, string, int) ([]*heygenv1.Voice, string, error) {
	return func(ctx context.Context, token string, size int) ([]*heygenv1.Voice, string, error) {
		p, err := crawlCall(ctx, func(ctx context.Context) (*heygen.Page[heygen.Voice], error) {
			return client.Voices.List(ctx, heygen.ListVoicesOptions{Type: typ, Engine: engine, Gender: gender, Limit: size, Token: token})
		})
		if err != nil {
			return nil, "", err
		}
		out := make([]*heygenv1.Voice, len(p.Items))
		for i := range p.Items {
			if p.Items[i].Type == nil && typ != "" {
				p.Items[i].Type = &typ
			}
			out[i] = VoiceFromHeyGen(&p.Items[i])
			if engine != "" {
				out[i].Engines = []string{engine}
			}
		}
		if details {
			if out, err = withDetails(ctx, client, out); err != nil {
				return nil, "", err
			}
		}
		return out, p.NextToken, nil
	}
}

// withDetails fetches each voice's details; a voice deleted since it was
// listed is dropped.
func withDetails(ctx context.Context, client *heygen.Client, voices []*heygenv1.Voice) ([]*heygenv1.Voice, error) {
	got := make([]*heygen.Voice, len(voices))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(detailConcurrency)
	for i, v := range voices {
		g.Go(func() error {
			d, err := crawlDetail(gctx, func(ctx context.Context) (*heygen.Voice, error) { return client.Voices.Get(ctx, v.GetId()) })
			var herr *heygen.Error
			if errors.As(err, &herr) && herr.Kind == heygen.KindNotFound {
				return nil
			}
			got[i] = d
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := voices[:0]
	for i, v := range voices {
		d := got[i]
		if d == nil {
			continue
		}
		v.Status, v.StatusRaw = enumOf(voiceStatusFromHeyGen, d.Status), d.Status
		v.FailureMessage, v.CreateTime = d.FailureMessage, timestampPtr(d.CreatedAt)
		v.SupportsInteractiveAvatar = d.SupportInteractiveAvatar
		out = append(out, v)
	}
	return out, nil
}

// Voices is the voice resource: public and cloned voices crawled side by
// side, and, for each engine in engines, the voices HeyGen lists as
// compatible with it (list items do not say), so the engine filter can be
// answered from memory.
func Voices(client *heygen.Client, engines []string) *Resource[*heygenv1.Voice, voiceKeys, VoiceFilter] {
	engines = slices.Clone(engines)
	r := &Resource[*heygenv1.Voice, voiceKeys, VoiceFilter]{
		Name: "voices",
		Kind: 'V',
		ID:   (*heygenv1.Voice).GetId,
		Wire: ProtoWire(func() *heygenv1.Voice { return &heygenv1.Voice{} }),
		Prepare: func(v *heygenv1.Voice) voiceKeys {
			return voiceKeys{text: lowerText(v.GetName(), v.GetId()), language: intern(strings.ToLower(v.GetLanguage())),
				gender: intern(strings.ToLower(v.GetGender())), own: v.GetOwnership(), engines: internSet(v.GetEngines(), false)}
		},
		Merge: func(first, again *heygenv1.Voice) *heygenv1.Voice {
			for _, e := range again.GetEngines() {
				if !slices.Contains(first.Engines, e) {
					first.Engines = append(first.Engines, e)
				}
			}
			slices.Sort(first.Engines)
			return first
		},
		Changing: func(v *heygenv1.Voice) bool { return v.GetStatus() == heygenv1.VoiceStatus_VOICE_STATUS_PROCESSING },
		Filter: FilterSpec[*heygenv1.Voice, voiceKeys, VoiceFilter]{
			Key: func(f VoiceFilter) string {
				return FilterKey("voices", itoa(f.Ownership), f.Language, f.Gender, f.Engine, f.Query)
			},
			Check: func(f VoiceFilter) error {
				if f.Engine != "" && !slices.Contains(engines, f.Engine) {
					return &FieldError{Field: "engine", Reason: "the gateway indexes voices only for the engines " + strings.Join(engines, ", ") +
						"; ask its operators to add " + f.Engine + " to -voice-engines"}
				}
				return nil
			},
			Match: func(f VoiceFilter, k *voiceKeys) bool {
				return (f.Ownership == 0 || k.own == f.Ownership) &&
					(f.Language == "" || k.language == f.Language) &&
					(f.Gender == "" || k.gender == f.Gender) &&
					(f.Engine == "" || slices.Contains(k.engines, f.Engine)) &&
					(f.Query == "" || strings.Contains(k.text, f.Query))
			},
		},
		Fetch: func(ctx context.Context, id string) (*heygenv1.Voice, error) {
			v, err := client.Voices.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			return VoiceFromHeyGen(v), nil
		},
		Upstream: &Upstream[*heygenv1.Voice, VoiceFilter]{
			MaxPageSize: heygen.MaxVoicePageLimit,
			Key: func(f VoiceFilter) string {
				return FilterKey("voices", itoa(f.Ownership), f.Language, f.Gender, f.Engine)
			},
			Unsupported: func(f VoiceFilter) []string { return setFields(map[string]bool{"query": f.Query != ""}) },
			Page: func(ctx context.Context, f VoiceFilter, token string, size int) ([]*heygenv1.Voice, string, error) {
				p, err := client.Voices.List(ctx, heygen.ListVoicesOptions{Type: voiceTypeToHeyGen[f.Ownership], Engine: f.Engine,
					Language: f.Language, Gender: f.Gender, Limit: size, Token: token})
				if err != nil {
					return nil, "", err
				}
				out := make([]*heygenv1.Voice, len(p.Items))
				for i := range p.Items {
					out[i] = VoiceFromHeyGen(&p.Items[i])
				}
				return out, p.NextToken, nil
			},
		},
	}
	r.Partitions = voicePartitions(client, engines, "")
	r.Split = func(context.Context) ([]Partition[*heygenv1.Voice], error) {
		// Each list again, by gender: half the pages each, side by side. A
		// voice of neither gender is in no slice: the full crawl finds it.
		var parts []Partition[*heygenv1.Voice]
		for _, gender := range voiceGenders {
			parts = append(parts, voicePartitions(client, engines, gender)...)
		}
		return parts, nil
	}
	return r
}

// voiceGenders are the values of HeyGen's voice gender filter.
var voiceGenders = []string{"female", "male"}

// voicePartitions are the voice lists a crawl pages through, of one gender
// or all: public and cloned voices, each for every engine indexed too.
func voicePartitions(client *heygen.Client, engines []string, gender string) []Partition[*heygenv1.Voice] {
	var parts []Partition[*heygenv1.Voice]
	for _, typ := range []string{heygen.VoiceTypePublic, heygen.VoiceTypePrivate} {
		for _, engine := range append([]string{""}, engines...) {
			name := typ + " voices"
			if engine != "" {
				name = typ + " " + engine + " voices"
			}
			if gender != "" {
				name = gender + " " + name
			}
			page := voicePages(client, typ, engine, gender, typ == heygen.VoiceTypePrivate && engine == "")
			parts = append(parts, Partition[*heygenv1.Voice]{
				Name: name,
				Page: func(ctx context.Context, token string) ([]*heygenv1.Voice, string, error) {
					return page(ctx, token, heygen.MaxVoicePageLimit)
				},
			})
		}
	}
	return parts
}
