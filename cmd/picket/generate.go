package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/picket-guard/picket/internal/doctor"
)

// helpSink is a stdout that --help describes itself to (see newFlags).
type helpSink interface {
	io.Writer
	describe(name, synopsis string, fs *flag.FlagSet)
}

// commandDoc is one command as its --help defines it.
type commandDoc struct {
	name, summary, operands, synopsis string
	flags                             []*flag.Flag
}

// docSink collects the description of one command and discards any text.
type docSink struct{ doc *commandDoc }

func (d *docSink) Write(p []byte) (int, error) { return len(p), nil }

func (d *docSink) describe(name, synopsis string, fs *flag.FlagSet) {
	d.doc = &commandDoc{name: name, synopsis: synopsis}
	fs.VisitAll(func(f *flag.Flag) { d.doc.flags = append(d.doc.flags, f) })
}

// describeCommands runs every command with --help into a docSink: each
// defines its flags and stops, having done nothing else.
func describeCommands(ctx context.Context) ([]commandDoc, error) {
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []commandDoc
	for _, n := range names {
		s := &docSink{}
		if st := cmds[n].run(ctx, []string{"--help"}, s, io.Discard); st != 0 || s.doc == nil || s.doc.name != n {
			return nil, fmt.Errorf("picket %s --help did not describe its flags (exit %d)", n, st)
		}
		s.doc.summary, s.doc.operands = cmds[n].summary, cmds[n].operands
		out = append(out, *s.doc)
	}
	return out, nil
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("generate", `Write picket's man page (roff, section 1) and its bash completion script,
both made from the flags every command defines, so they say what --help
says. "-" writes to stdout. The package build runs it; so can anyone who
installs the binary by hand:

  picket generate --man /usr/local/share/man/man1/picket.1 \
      --bash-completion /etc/bash_completion.d/picket`, stdout, stderr)
	man := fs.String("man", "", "write the man page to `FILE`")
	completion := fs.String("bash-completion", "", "write the bash completion script to `FILE`")
	date := fs.String("date", "", "the man page's `DATE` (YYYY-MM-DD; default: $SOURCE_DATE_EPOCH, else the commit's date, else today)")
	if st, stop := parseFlags(fs, args); stop {
		return st
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "picket generate: "+format+"\n", a...)
		return 1
	}
	if *man == "" && *completion == "" {
		return fail("nothing to do: give --man FILE and/or --bash-completion FILE")
	}
	docs, err := describeCommands(ctx)
	if err != nil {
		return fail("%v", err)
	}
	b := buildInfo()
	day, err := manDate(*date, b)
	if err != nil {
		return fail("%v", err)
	}
	write := func(path string, text string) error {
		if path == "-" {
			_, err := io.WriteString(stdout, text)
			return err
		}
		return os.WriteFile(path, []byte(text), 0o644)
	}
	if *man != "" {
		if err := write(*man, manPage(docs, b.Version, day)); err != nil {
			return fail("%v", err)
		}
	}
	if *completion != "" {
		if err := write(*completion, bashCompletion(docs)); err != nil {
			return fail("%v", err)
		}
	}
	return 0
}

// manDate follows the reproducible-builds convention: SOURCE_DATE_EPOCH
// when set, so two builds of one commit make the same page.
func manDate(flagDate string, b build) (string, error) {
	if flagDate != "" {
		if _, err := time.Parse(time.DateOnly, flagDate); err != nil {
			return "", fmt.Errorf("--date %q: want YYYY-MM-DD", flagDate)
		}
		return flagDate, nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		sec, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return "", fmt.Errorf("SOURCE_DATE_EPOCH=%q: not seconds since 1970", e)
		}
		return time.Unix(sec, 0).UTC().Format(time.DateOnly), nil
	}
	if !b.Time.IsZero() {
		return b.Time.UTC().Format(time.DateOnly), nil
	}
	return time.Now().UTC().Format(time.DateOnly), nil
}

// flagArg is a flag's value name (the `NAME` in its usage, else its type)
// and its usage text, as flag.PrintDefaults shows them.
func flagArg(f *flag.Flag) (string, string) {
	name, usage := flag.UnquoteUsage(f)
	switch name {
	case "value":
		name = "VALUE"
	case "string", "int", "uint", "float", "duration", "int64", "uint64":
		name = strings.ToUpper(name)
	}
	return name, usage
}

// hasDefault mirrors flag.PrintDefaults: a default is shown unless it is
// the zero value of the flag's type.
func hasDefault(f *flag.Flag) (shown bool) {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	if !ok {
		return f.DefValue != ""
	}
	defer func() {
		if recover() != nil {
			shown = f.DefValue != ""
		}
	}()
	return f.DefValue != v.String()
}

// manPage writes the roff page: every command, its text and its flags.
func manPage(docs []commandDoc, version, date string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	fill := func(text string) { b.WriteString(roffFill(text)) }
	w(`.\" Generated by picket generate --man from the commands' own flags; do not edit.`)
	w(`.TH PICKET 1 %s "picket %s" "picket manual"`, date, roffText(version))
	w(".SH NAME")
	w(`picket \- host guard for Linux servers: processes, sockets and kernel limits`)
	w(".SH SYNOPSIS")
	w(".B picket")
	w(".I COMMAND")
	w(".RI [ flags ]")
	w(".RI [ operands ]")
	w(".SH DESCRIPTION")
	fill("picket sees every process and every socket against the kernel's limits, names the exhaustion " +
		"that is coming, watches rules and acts on them, in one static binary that forks no ps, ss or shell while the " +
		"host is dying. picket run is the daemon; the other commands look once, explain, or manage what it did.")
	w(".PP")
	fill("Every flag may be written with one dash or two. picket help COMMAND, or picket COMMAND --help, " +
		"prints what this page says about the command.")
	w(".SH COMMANDS")
	for _, d := range docs {
		w(".TP")
		w(`.B %s`, d.name)
		fill(d.summary)
	}
	for _, d := range docs {
		w(`.SS "%s"`, roffText(usageLine(d.name)))
		roffParagraphs(&b, d.synopsis, true)
		for _, f := range d.flags {
			arg, usage := flagArg(f)
			w(".TP")
			if arg == "" {
				w(`.B \-\-%s`, roffText(f.Name))
			} else {
				w(`.BI \-\-%s " %s"`, roffText(f.Name), roffText(arg))
			}
			if hasDefault(f) {
				usage += " (default " + f.DefValue + ")"
			}
			fill(strings.Join(strings.Fields(usage), " "))
		}
	}
	w(".SH EXIT STATUS")
	fill("0 when the command did what was asked; each command above says what its other codes mean. " +
		"picket doctor exits as a monitoring plugin: 0 ok, 1 warning, 2 critical, 3 unknown.")
	w(".SH ENVIRONMENT")
	w(".TP")
	w(".B NO_COLOR")
	fill("when set, --color auto never colours (https://no-color.org).")
	w(".TP")
	w(".B SOURCE_DATE_EPOCH")
	fill("the date picket generate --man writes into the page.")
	w(".SH FILES")
	w(".TP")
	w(".I /etc/picket/picket.yaml")
	fill("the configuration picket.service runs with; picket validate checks it.")
	w(".TP")
	w(".I /var/lib/picket/")
	fill("picket run's state (another user's: $XDG_STATE_HOME/picket): history.db, journal.jsonl, the spool of undelivered alerts, picket.log.")
	w(".TP")
	w(".I /usr/share/doc/picket/examples/")
	fill("one configuration per kind of exhaustion, with per-host values.")
	w(".SH SEE ALSO")
	w(`.BR systemctl (1),`)
	w(`.BR ss (8),`)
	w(`.BR proc (5)`)
	return b.String()
}

// roffParagraphs writes --help text: blank lines part paragraphs; a
// paragraph with indented lines (examples, key tables) keeps its layout.
// first is true right after a heading, which starts a paragraph itself.
func roffParagraphs(b *strings.Builder, text string, first bool) {
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		p = strings.Trim(p, "\n")
		if p == "" {
			continue
		}
		lines := strings.Split(p, "\n")
		verbatim, usage := false, true
		for _, l := range lines {
			verbatim = verbatim || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")
			usage = usage && strings.HasPrefix(l, "picket ")
		}
		verbatim = verbatim || usage
		if !first {
			b.WriteString(".PP\n")
		}
		first = false
		if !verbatim {
			b.WriteString(roffFill(p))
			continue
		}
		b.WriteString(".nf\n")
		for _, l := range lines {
			l = strings.TrimRight(l, " \t")
			if l == "" {
				b.WriteString(".sp\n")
				continue
			}
			b.WriteString(roffText(l) + "\n")
		}
		b.WriteString(".fi\n")
	}
}

// roffFill writes text for fill mode, words escaped and lines kept within
// 80 bytes (roff joins them again).
func roffFill(text string) string {
	var b strings.Builder
	n := 0
	for _, word := range strings.Fields(text) {
		e := roffText(word)
		switch {
		case n == 0:
		case n+1+len(e) > 80:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(e)
		n += len(e)
	}
	if n > 0 {
		b.WriteByte('\n')
	}
	return b.String()
}

// roffText escapes one line of text for roff: backslashes, a leading
// control character, and everything outside ASCII as \[uXXXX] (which both
// groff and mandoc render, whatever the terminal's charset).
func roffText(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case (r == '.' || r == '\'') && i == 0:
			b.WriteString(`\&` + string(r))
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		case r < ' ':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// flagValues are the values a flag takes, for completion: the check ids
// and the colour modes.
func flagValues(cmd, flag string) []string {
	switch {
	case cmd == "doctor" && flag == "check":
		var ids []string
		for _, c := range doctor.Checks() {
			ids = append(ids, c.ID())
		}
		return ids
	case flag == "color":
		return []string{"auto", "always", "never"}
	}
	return nil
}

// bashCompletion writes a completion function: commands, each command's
// flags, FILE and DIR values from the file system, enumerated values, and
// files as the operands of picket validate.
func bashCompletion(docs []commandDoc) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	var names []string
	for _, d := range docs {
		names = append(names, d.name)
	}
	w("# bash completion for picket; generated by picket generate --bash-completion from the commands' own flags.")
	w("_picket() {")
	w(`    local cur prev cmd`)
	w(`    cur=${COMP_WORDS[COMP_CWORD]}`)
	w(`    prev=${COMP_WORDS[COMP_CWORD-1]}`)
	w(`    if [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then prev=${COMP_WORDS[COMP_CWORD-2]}; fi`)
	w(`    if [ "$cur" = "=" ]; then cur=; fi`)
	w(`    if [ "$COMP_CWORD" -le 1 ]; then`)
	w(`        COMPREPLY=($(compgen -W "%s help" -- "$cur"))`, strings.Join(names, " "))
	w(`        return`)
	w(`    fi`)
	w(`    cmd=${COMP_WORDS[1]}`)
	w(`    if [ "$cmd" = help ]; then`)
	w(`        [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "%s" -- "$cur"))`, strings.Join(names, " "))
	w(`        return`)
	w(`    fi`)
	w(`    case "$cmd ${prev#-}" in`)
	for _, d := range docs {
		for _, f := range d.flags {
			arg, _ := flagArg(f)
			if arg == "" {
				continue // a bool takes no value
			}
			pat := fmt.Sprintf(`"%s %s"|"%s -%s"`, d.name, f.Name, d.name, f.Name)
			switch {
			case flagValues(d.name, f.Name) != nil:
				w(`    %s) COMPREPLY=($(compgen -W "%s" -- "$cur")); return ;;`, pat, strings.Join(flagValues(d.name, f.Name), " "))
			case arg == "FILE":
				w(`    %s) COMPREPLY=($(compgen -f -- "$cur")); return ;;`, pat)
			case arg == "DIR":
				w(`    %s) COMPREPLY=($(compgen -d -- "$cur")); return ;;`, pat)
			default:
				w(`    %s) COMPREPLY=(); return ;;`, pat)
			}
		}
	}
	w(`    esac`)
	w(`    local flags=`)
	w(`    case "$cmd" in`)
	for _, d := range docs {
		var fl []string
		for _, f := range d.flags {
			fl = append(fl, "--"+f.Name)
		}
		w(`    %s) flags="%s" ;;`, d.name, strings.Join(append(fl, "--help"), " "))
	}
	w(`    esac`)
	w(`    if [[ $cur == -* ]]; then`)
	w(`        COMPREPLY=($(compgen -W "$flags" -- "$cur"))`)
	w(`        return`)
	w(`    fi`)
	for _, d := range docs {
		if strings.Contains(d.operands, "FILE") {
			w(`    [ "$cmd" = %s ] && COMPREPLY=($(compgen -f -- "$cur"))`, d.name)
		}
	}
	w(`    return 0`)
	w("}")
	w("complete -F _picket picket")
	return b.String()
}
