// Package fakeheygen is a fake of HeyGen's REST API v3, served over real HTTP on a
// loopback port, for the service's demo mode, its tests and its benchmarks.
//
// It is written from HeyGen's API notes, independently of this repository's client, so
// that a decoding bug in the client is not mirrored here. It checks the X-Api-Key header
// (several keys during a rotation), pages with opaque tokens bound to their filters,
// answers with the JSON shapes HeyGen sends (explicit nulls, {"data":...} envelopes,
// v3 error objects with param, 404 *_not_found codes) and records every request it
// receives. It has no fault injection: package faults adds that as an
// Options.Middleware, so the demo binary does not ship it.
//
// # Endpoints
//
//	GET    /v3/users/me                  the Account (wallet, subscription or usage_based)
//	GET    /v3/avatars                   groups: ownership, limit 1-50 (20), token
//	GET    /v3/avatars/{group_id}
//	GET    /v3/avatars/looks             looks: group_id, avatar_type, ownership, limit, token
//	GET    /v3/avatars/looks/{look_id}
//	GET    /v3/voices                    type public|private (public), engine, language,
//	                                     gender, limit 1-100 (20), token
//	GET    /v3/voices/{voice_id}
//	POST   /v3/videos                    create (avatar and image variants)
//	GET    /v3/videos                    title substring, folder_id, limit 1-100 (10), token
//	GET    /v3/videos/{video_id}
//	DELETE /v3/videos/{video_id}
//	GET    /v3/videos/statuses           video_ids (and batch_ids), at most 100 in all
//
// Any other method on these paths gets 405 method_not_allowed with an Allow header; any
// other path 404 not_found. A missing or wrong key gets HeyGen's flat 401
// {"code":400112,"message":"Unauthorized"} before anything else.
//
// # Videos
//
// POST /v3/videos validates its JSON body like HeyGen: 400 invalid_parameter with param
// for a missing, mistyped, out-of-range or mutually exclusive field (script, audio_url
// and audio_asset_id; background url and asset_id; expressiveness and engine avatar_v),
// an empty script or one over MaxScriptChars; 404 avatar_not_found or voice_not_found;
// 400 voice_not_usable for a cloned voice still processing or failed; 402
// insufficient_credit when the Account cannot pay VideoCost; 413 above
// MaxCreateBodyBytes. It answers {"data":{"video_id","status":"waiting","output_format"}}.
//
// A created video is pending for Options.RenderPending (DefaultRenderPending, 2 s), then
// processing for Options.RenderProcessing (DefaultRenderProcessing, 6 s), then completed
// with sample URLs, duration and completed_at; or failed, with failure_code
// RenderFailureCode, when its script or title contains the word FailRender
// ("FAIL_RENDER"). Progress is computed from Options.Clock when a video is read: no
// goroutine runs per video.
//
// The Idempotency-Key header must be 1-255 characters of [A-Za-z0-9_:.-] (else 400). For
// IdempotencyTTL (24 h) a repeated key replays the original answer, whatever the new
// body; a repeat while the original is still being created (Options.CreateDelay) gets
// 409 request_in_progress. A video created with a key gets an id derived from the key
// (the same on every run, for documents and demos). Creations have their own token-bucket limit
// (Options.CreateRate and CreateBurst, by default 1 a second with bursts of 5): over it,
// 429 rate_limit_exceeded with Retry-After in seconds. Reads are never limited.
//
// # Data
//
// DemoCatalogue (60 groups, 425 looks), DemoVoices (312 voices in 12 languages, 31 of
// them private clones in every status), DemoAccount and DemoVideos are the demo's fixed
// data; GenerateCatalogue and GenerateVoices make deterministic data of any size for
// benchmarks. Every default_voice_id of a generated or demo catalogue names a public
// voice of DemoVoices. SetCatalogue, SetVoices, SetAccount, SetAPIKeys and SetLatency
// change a running server.
package fakeheygen
