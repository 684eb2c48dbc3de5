package task

import "sync"

// Store is the set of tasks this plugin process knows, by task id.
type Store struct {
	mu    sync.RWMutex
	tasks map[string]*Handle
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{tasks: map[string]*Handle{}} }

// Get returns the handle of a task.
func (s *Store) Get(id string) (*Handle, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.tasks[id]
	return h, ok
}

// Add records a task; it reports false if the id is already taken.
func (s *Store) Add(id string, h *Handle) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.tasks[id]; dup {
		return false
	}
	s.tasks[id] = h
	return true
}

// Delete forgets a task.
func (s *Store) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, id)
}
