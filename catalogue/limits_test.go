package catalogue

import (
	"context"
	"testing"
	"time"
)

// TestSlotsServeListPagesFirst: a slot freed goes to a waiting list page
// before a detail call that waited longer; waiters that give up leave no
// slot behind; the bound holds.
func TestSlotsServeListPagesFirst(t *testing.T) {
	s := newSlots(1)
	if err := s.acquire(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 3)
	detail := make(chan struct{})
	go func() {
		close(detail)
		if err := s.acquire(t.Context(), false); err == nil {
			got <- "detail"
			s.release()
		}
	}()
	<-detail
	time.Sleep(20 * time.Millisecond) // the detail call waits first
	gone, cancel := context.WithCancel(t.Context())
	quit := make(chan error, 1)
	go func() { quit <- s.acquire(gone, true) }()
	time.Sleep(20 * time.Millisecond)
	cancel() // a page that gives up
	if err := <-quit; err == nil {
		t.Fatal("a cancelled wait got a slot")
	}
	go func() {
		if err := s.acquire(t.Context(), true); err == nil {
			got <- "page"
			s.release()
		}
	}()
	time.Sleep(20 * time.Millisecond)
	s.release()
	if first, second := <-got, <-got; first != "page" || second != "detail" {
		t.Fatalf("slots went to %s then %s, want the page first", first, second)
	}
	// Everything released: exactly one slot is free again.
	if err := s.acquire(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	busy, cancel2 := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel2()
	if err := s.acquire(busy, true); err == nil {
		t.Fatal("a second slot was free with a bound of 1")
	}
}
