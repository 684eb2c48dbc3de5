package runner

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/solstice-ci/solstice/internal/contract"
)

// File commands, in the order the runner processes them.
const (
	filePath    = "path"
	fileEnv     = "env"
	fileSummary = "step_summary"
	fileState   = "state"
	fileOutput  = "output"
)

var fileCommandOrder = []string{filePath, fileEnv, fileSummary, fileState, fileOutput}

var filePrefixes = map[string]string{
	filePath: "add_path_", fileEnv: "set_env_", fileSummary: "step_summary_",
	fileState: "save_state_", fileOutput: "set_output_",
}

// SummaryLimit is the largest step summary GitHub accepts.
const SummaryLimit = 1 << 20

// fileCommands are one step's command files.
type fileCommands struct {
	dir    string
	suffix string
}

// newFileCommands creates fresh, empty command files for a step.
func (j *Job) newFileCommands() (*fileCommands, error) {
	f := &fileCommands{dir: filepath.Join(j.layout.Temp, "_runner_file_commands"), suffix: newUUID()}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create file command directory: %w", err)
	}
	for _, name := range fileCommandOrder {
		if err := os.WriteFile(f.path(name), nil, 0o666); err != nil {
			return nil, fmt.Errorf("create file command %s: %w", name, err)
		}
	}
	return f, nil
}

func (f *fileCommands) path(name string) string {
	return filepath.Join(f.dir, filePrefixes[name]+f.suffix)
}

// remove deletes the files once processed.
func (f *fileCommands) remove() {
	for _, name := range fileCommandOrder {
		os.Remove(f.path(name))
	}
}

// processFileCommands applies a finished step's command files; a broken
// file fails the step (after the pairs before the problem were applied).
func (j *Job) processFileCommands(s *stepRun, f *fileCommands) {
	defer f.remove()
	for _, name := range fileCommandOrder {
		if err := j.processFile(s, f, name); err != nil {
			j.errorLine(s.index, fmt.Sprintf("Unable to process file command '%s' successfully.", name))
			j.errorLine(s.index, err.Error())
			s.commandFailed = true
		}
	}
}

func (j *Job) processFile(s *stepRun, f *fileCommands, name string) error {
	if name == fileSummary {
		return j.processSummary(s, f.path(name))
	}
	data, err := os.ReadFile(f.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if name == filePath {
		for _, line := range splitLines(string(data)) {
			if line != "" {
				j.addPath(line)
			}
		}
		return nil
	}
	pairs, perr := parseKeyValues(string(data))
	for _, kv := range pairs {
		j.applyPair(s, name, kv[0], kv[1])
	}
	return perr
}

func (j *Job) applyPair(s *stepRun, file, key, value string) {
	switch file {
	case fileEnv:
		if strings.EqualFold(key, "NODE_OPTIONS") {
			j.errorLine(s.index, "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.")
			return
		}
		j.setEnv(key, value)
	case fileOutput:
		s.setOutput(key, value)
	case fileState:
		// Only post steps of actions read state; Solstice runs none.
	}
	j.debug(s.index, fmt.Sprintf("%s: %s='%s'", file, key, value))
}

// parseKeyValues reads NAME=value lines and NAME<<DELIM heredocs
// (EnvFileKeyValuePairs); whichever of "=" and "<<" comes first in a line
// decides. It returns the pairs before the first error, and the error.
func parseKeyValues(text string) ([][2]string, error) {
	var out [][2]string
	idx := 0
	for line, ok := readLine(text, &idx); ok; line, ok = readLine(text, &idx) {
		if line == "" {
			continue
		}
		eq, hd := strings.Index(line, "="), strings.Index(line, "<<")
		switch {
		case eq >= 0 && (hd < 0 || eq < hd):
			if eq == 0 {
				return out, fmt.Errorf("Invalid format '%s'. Name must not be empty", line)
			}
			out = append(out, [2]string{line[:eq], line[eq+1:]})
		case hd >= 0:
			key, delim := line[:hd], line[hd+2:]
			if key == "" || delim == "" {
				return out, fmt.Errorf("Invalid format '%s'. Name must not be empty and delimiter must not be empty", line)
			}
			value, err := readHeredoc(text, &idx, delim)
			if err != nil {
				return out, err
			}
			out = append(out, [2]string{key, value})
		default:
			return out, fmt.Errorf("Invalid format '%s'", line)
		}
	}
	return out, nil
}

// readHeredoc reads the lines up to one equal to delim; the value is the
// text between, without the newline before the delimiter.
func readHeredoc(text string, idx *int, delim string) (string, error) {
	start, end := *idx, *idx
	for {
		line, ok := readLine(text, idx)
		if !ok {
			return "", fmt.Errorf("Invalid value. Matching delimiter not found '%s'", delim)
		}
		if line == delim {
			return text[start:end], nil
		}
		if *idx == len(text) && !strings.HasSuffix(text, "\n") {
			return "", errors.New("Invalid value. EOF marker missing new line.")
		}
		end = *idx - 1 // before this line's "\n"
	}
}

// readLine returns the line at *idx (without "\n") and moves past it.
func readLine(text string, idx *int) (string, bool) {
	if *idx >= len(text) {
		return "", false
	}
	rest := text[*idx:]
	i := strings.IndexByte(rest, '\n')
	if i < 0 {
		*idx = len(text)
		return rest, true
	}
	*idx += i + 1
	return rest[:i], true
}

// processSummary reports the step summary (masked by the event writer).
func (j *Job) processSummary(s *stepRun, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	if fi.Size() > SummaryLimit {
		// The runner reports this as an error without failing the step.
		j.errorLine(s.index, fmt.Sprintf("$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of %dk, got %dk. For more information see: https://docs.github.com/actions/using-workflows/workflow-commands-for-github-actions#adding-a-markdown-summary", SummaryLimit/1024, fi.Size()/1024))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, SummaryLimit))
	if err != nil {
		return err
	}
	j.emit(contract.Event{Type: contract.TypeStepSummary, Step: s.index, Markdown: string(data)})
	return nil
}

// newUUID returns a random (version 4) UUID for file names.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
