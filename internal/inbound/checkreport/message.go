package checkreport

import "fmt"

// Message is a sentence of the report kept as its English fmt format and
// arguments, so that a reader in another language can have it: the
// caller looks the format up in its catalogue (internal/i18n) and fills
// in the arguments (host names, addresses, record data; some are fixed
// English phrases a catalogue may translate too). checkreport itself
// knows no language. Formats use the verb %s only (arguments are
// formatted here), so that a translation's verbs cannot disagree with
// the arguments' types.
type Message struct {
	Format string   `json:"format"`
	Args   []string `json:"args,omitempty"`
}

// newMessage keeps format and args, each argument as fmt prints it.
func newMessage(format string, args ...any) Message {
	m := Message{Format: format}
	for _, a := range args {
		m.Args = append(m.Args, fmt.Sprint(a))
	}
	return m
}

// String is the sentence in English: the Text of a finding, a sentence,
// the colour reason.
func (m Message) String() string {
	args := make([]any, len(m.Args))
	for i, a := range m.Args {
		args[i] = a
	}
	return fmt.Sprintf(m.Format, args...)
}
