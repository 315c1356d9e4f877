package main

import "bytes"

// Secrets as config files hold them: an .ini, .properties or TOML line
// gives a secret unquoted and spaced (password = Xk29fjsLq02), which in
// code reads as an identifier given to a variable, and a .netrc gives one
// with no separator at all (login bob password Xk29fjsLq02).

// minConfigSecret is the shortest unquoted value a config line gives that
// is read as a secret though it reads as an identifier too.
const minConfigSecret = 8

// minConfigWord is the shortest unquoted value of letters alone that a
// config line gives and configValue reads as a secret: hunter, a password
// as people choose them.
const minConfigWord = 6

// configValue reports whether text[v:e], a value given to the name that
// starts at name with " = " and read as an identifier (codeValue), is a
// config file's secret: the name starts its line (blanks, export and a
// dotted or prefixed key aside: spring.datasource.password, DB_PASSWORD),
// the value ends it (blanks and a # comment aside), and the value reads
// as a secret rather than a variable: eight bytes or more of letters and
// digits, both (code names its variables with words, and a name that
// says secret, nextToken2, is no secret: mayBeSecret), or six letters or
// more on a line that is not indented or lies in an INI file's section
// (password = hunter in a my.cnf, password = CorrectHorseBatteryStaple in
// an .env, a pip.conf's settings indented under [global]): code that
// gives a variable a variable does so inside a function, indented, under
// a line that is no section's header, and at the top of a file declares
// it (var, let, const) or calls something.
func (sc *scratch) configValue(text []byte, name, v, e int) bool {
	s := text[v:e]
	switch {
	case len(s) >= minConfigSecret && letterDigitWord(s):
	case len(s) >= minConfigWord && allLetters(s) && (!sc.indented(text, name) || sc.inSection(text, name)):
	default:
		return false
	}
	return sc.startsLine(text, name) && endsLine(text, e)
}

// allLetters is true of ASCII letters alone.
func allLetters(b []byte) bool {
	for _, c := range b {
		if !isLetter(c) {
			return false
		}
	}
	return true
}

// indented reports whether the line that holds text[i] starts with a blank.
func (sc *scratch) indented(text []byte, i int) bool {
	ls := sc.line.lineStart(text, i)
	return ls < i && (text[ls] == ' ' || text[ls] == '\t')
}

// sectionTracker tells whether a line lies in a section of an INI file
// (my.cnf, pip.conf, php.ini, a .pypirc, supervisord's, systemd's): it
// follows a section's header ([client], [program:worker]) with nothing
// between but settings (name = value, name: value), comments and blank
// lines. Lines are asked in increasing order, and each is read once.
type sectionTracker struct {
	upTo int  // the lines that start before upTo have been read
	in   bool // the line that starts at upTo lies in a section
}

// inSection reports whether the line that holds text[i] lies in an INI
// file's section (sectionTracker).
func (sc *scratch) inSection(text []byte, i int) bool {
	ls := sc.line.lineStart(text, i)
	st := &sc.section
	if ls < st.upTo {
		*st = sectionTracker{} // asked out of order: read again from the start
	}
	for st.upTo < ls {
		nl := bytes.IndexByte(text[st.upTo:ls], '\n')
		if nl < 0 {
			break // ls starts a line: there is a line break before it
		}
		line := text[st.upTo : st.upTo+nl]
		sc.steps += nl + 1
		switch {
		case sectionHeader(line):
			st.in = true
		case st.in:
			st.in = settingLine(line)
		}
		st.upTo += nl + 1
	}
	return st.in
}

// sectionHeader reports whether line is an INI section's header, blanks
// aside: [name], [name "sub"], [program:worker], TOML's [a.b] and
// [[a.b]]. A bracket of code holds a list ([a, b]) or an index and a call
// (x[i](y)); a header holds a letter, and none of ,;=(){}[].
func sectionHeader(line []byte) bool {
	h := bytes.Trim(line, " \t\r")
	if len(h) > 2 && h[0] == '[' && h[1] == '[' {
		h = bytes.TrimSuffix(h[1:], []byte("]"))
	}
	if len(h) < 3 || len(h) > maxLabel || h[0] != '[' || h[len(h)-1] != ']' {
		return false
	}
	h = h[1 : len(h)-1]
	return bytes.ContainsFunc(h, func(r rune) bool { return r < 0x80 && isLetter(byte(r)) }) && !bytes.ContainsAny(h, ",;=(){}[]")
}

// settingLine reports whether line may lie in an INI section: blank, a
// comment (# or ;), a header, or a name of letters, digits, '_', '.' and
// '-' given a value with '=' or ':'.
func settingLine(line []byte) bool {
	k := 0
	for k < len(line) && (line[k] == ' ' || line[k] == '\t') {
		k++
	}
	if k == len(line) || line[k] == '\r' || line[k] == '#' || line[k] == ';' {
		return true
	}
	n := k
	for n < len(line) && (isWordByte(line[n]) || line[n] == '.' || line[n] == '-') {
		n++
	}
	if n == k {
		return false
	}
	for n < len(line) && (line[n] == ' ' || line[n] == '\t') {
		n++
	}
	return n < len(line) && (line[n] == '=' || line[n] == ':')
}

// letterDigitWord is true of letters and digits alone, both among them.
func letterDigitWord(b []byte) bool {
	for _, c := range b {
		if !isLetter(c) && !isDigit(c) {
			return false
		}
	}
	return lettersAndDigits(b)
}

// lettersAndDigits is true of text that holds an ASCII letter and a digit.
func lettersAndDigits(b []byte) bool {
	return hasDigit(b) && bytes.ContainsFunc(b, func(r rune) bool { return r < 0x80 && isLetter(byte(r)) })
}

// startsLine reports whether the name that starts at text[name] starts its
// line but for blanks, an export and the rest of its key (a dotted path, a
// prefix joined with '_' or '-'). It looks back maxLabel bytes at most:
// every name of a long line is asked.
func (sc *scratch) startsLine(text []byte, name int) bool {
	ls := sc.line.lineStart(text, name)
	if name-ls > maxLabel {
		return false
	}
	sc.steps += name - ls
	k := ls
	for k < name && (text[k] == ' ' || text[k] == '\t') {
		k++
	}
	if bytes.HasPrefix(text[k:name], []byte("export ")) {
		k += len("export ")
	}
	for ; k < name; k++ {
		if c := text[k]; !isWordByte(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// endsLine reports whether text[e] ends its line: blanks, then the end of
// the text, a line break or a # comment. It looks ahead maxLabel bytes
// at most.
func endsLine(text []byte, e int) bool {
	for k := e; k < len(text) && k-e <= maxLabel; k++ {
		switch text[k] {
		case ' ', '\t':
			continue
		case '\r', '\n', '#':
			return true
		}
		return false
	}
	return len(text)-e <= maxLabel
}

// netrcPassword returns the value that a .netrc gives the password that
// starts at text[name] and ends at text[j], password Xk29fjsLq02: the
// word starts its line or follows a login on it (machine h login bob
// password …), one or more blanks follow it, and the value, up to a blank
// or the end of the line, may be a secret. ok is false when that is not
// so.
func (sc *scratch) netrcPassword(text []byte, name, j int) (start, end int, ok bool) {
	if !bytes.Equal(sc.lower[name:j], []byte("password")) || j >= len(text) || text[j] != ' ' && text[j] != '\t' {
		return 0, 0, false
	}
	v := j
	for v < len(text) && v-j <= maxLabel && (text[v] == ' ' || text[v] == '\t') {
		v++
	}
	e := v
	for e < len(text) && e-v <= maxLabel && !isSpace(text[e]) {
		e++
	}
	sc.steps += e - j
	// Prose and code say password and a word too (password required, a
	// struct's password []byte), and a test's .netrc gives examples
	// (pwd2, gopher@golang.org): the value must read as a secret, eight
	// bytes or more, letters and digits among them.
	if v == e || e-v > maxLabel || e-v < minConfigSecret || !endsLine(text, e) || !lettersAndDigits(text[v:e]) || !mayBeSecret(text[v:e]) {
		return 0, 0, false
	}
	if !sc.startsLine(text, name) && !sc.followsLogin(text, name) {
		return 0, 0, false
	}
	return v, e, true
}

// followsLogin reports whether a .netrc's login and its value come just
// before the name that starts at text[name]: login bob password.
func (sc *scratch) followsLogin(text []byte, name int) bool {
	k := name
	if k == 0 || text[k-1] != ' ' && text[k-1] != '\t' {
		return false
	}
	for k > 0 && name-k <= maxLabel && (text[k-1] == ' ' || text[k-1] == '\t') {
		k--
	}
	w := k // the login's value ends here
	for k > 0 && w-k <= maxLabel && !isSpace(text[k-1]) {
		k--
	}
	if k == w {
		return false
	}
	for k > 0 && name-k <= 2*maxLabel && (text[k-1] == ' ' || text[k-1] == '\t') {
		k--
	}
	sc.steps += name - k
	return k >= len("login") && bytes.Equal(sc.lower[k-len("login"):k], []byte("login"))
}

// maxPgpassField is the longest field of a .pgpass line pgpassLines reads.
const maxPgpassField = 255

// pgpassLines finds the passwords of .pgpass lines in text,
// host:port:database:user:password, as the expression
// (?m)(?:^|['"])(?:H+:(?:5432|6432|\*):F:F:((?:[^\s'"\\]|E)+\\?|\\)|H*(?:[^:\s#'"\\0-9]|E)H*:[1-9][0-9]{2,4}:F:F:((?:[^\s'":\\]|E)+\\?|\\))(?:[ \t\r]*$|['"])
// would, where H is (?:[^:\s#'"\\]|E), a byte of a host, F is
// (?:[^:\s'"\\]|E)+, a field, and E is \\[^\s'"], an escape (.pgpass
// writes a colon or a backslash of a field as \: and \\), each field up
// to maxPgpassField bytes. The line may be quoted in a command (echo
// 'h:5432:db:u:pw' >> ~/.pgpass). On a port other than PostgreSQL's
// 5432, PgBouncer's 6432 and * (Supabase's pooler 6543, DigitalOcean's
// 25060, a second cluster's 5433), the line is read more strictly, for an
// IPv6 address (2001:4860:0:2001::68) and a compiler's position (f3:102:7)
// are shaped alike: the host holds a byte that is no digit, and the
// password no colon but an escaped one. Found by hand: the regexp
// machine, with no literal prefix to scan for, reads a long text a few
// megabytes a second. Each colon is looked at, and each field read, a
// bounded number of times.
func pgpassLines(text []byte, found func(start, end int)) {
	for i := 0; ; {
		c := bytes.IndexByte(text[i:], ':')
		if c < 0 {
			return
		}
		c += i
		i = c + 1
		if escapedAt(text, c) {
			continue
		}
		port, known := pgpassPort(text[c+1:])
		if port == 0 || !pgpassHost(text, c, known) {
			continue
		}
		s, e, ok := pgpassPassword(text, c+1+port+1, known)
		if !ok {
			continue
		}
		found(s, e)
		i = e
		if e < len(text) && isQuote(text[e]) {
			i++ // the quote that closes the line opens no other
		}
	}
}

// escapedAt reports whether a backslash escapes text[i]: an odd number of
// them comes just before it (\\ is one backslash, escaped, and \: a
// colon). The backslashes before different bytes are different ones.
func escapedAt(text []byte, i int) bool {
	k := i
	for k > 0 && text[k-1] == '\\' {
		k--
	}
	return (i-k)%2 == 1
}

// pgpassEscape reports whether text[k] starts an escape of a .pgpass
// field: a backslash and the byte after it, which is no blank or quote.
func pgpassEscape(text []byte, k int) bool {
	return text[k] == '\\' && k+1 < len(text) && !isSpace(text[k+1]) && !isQuote(text[k+1])
}

// pgpassPort returns the length of the port that rest starts with, and
// the colon after it: 5432, 6432 or * (known), or any other number of
// three to five digits, the first not 0; 0 for none. A port under 100
// is none a server of PostgreSQL's listens on, and a compiler's position
// of one or two digits (f5:10:6[f1:5:10], in cmd/internal/src's tests) is
// shaped as a .pgpass line with such a port.
func pgpassPort(rest []byte) (n int, known bool) {
	switch {
	case bytes.HasPrefix(rest, []byte("5432:")), bytes.HasPrefix(rest, []byte("6432:")):
		return 4, true
	case bytes.HasPrefix(rest, []byte("*:")):
		return 1, true
	}
	for n < len(rest) && n < 6 && isDigit(rest[n]) {
		n++
	}
	if n < 3 || n > 5 || n == len(rest) || rest[n] != ':' || rest[0] == '0' {
		return 0, false
	}
	return n, false
}

// pgpassHost reports whether a host ends at the colon text[c]: a field
// that starts the line or follows a quote, holds no # nor colon but
// escaped ones, and, on a port not known, holds a byte that is no digit.
func pgpassHost(text []byte, c int, known bool) bool {
	h := c
	digits := true
	for h > 0 && c-h <= maxPgpassField {
		b := text[h-1]
		if isSpace(b) || isQuote(b) || (b == ':' || b == '#') && !escapedAt(text, h-1) {
			break
		}
		h--
		digits = digits && isDigit(b)
	}
	return h < c && (known || !digits) && (h == 0 || text[h-1] == '\n' || isQuote(text[h-1]))
}

// pgpassPassword reads the database, the user and the password of a
// .pgpass line from text[k]; [start, end) is the password, which holds no
// colon but escaped ones unless the port is known.
func pgpassPassword(text []byte, k int, known bool) (start, end int, ok bool) {
	// read returns the end of the field at text[from], which stops
	// before a blank, a quote, or a colon when colon is set.
	read := func(from int, colon bool) int {
		k := from
		for k < len(text) && k-from <= maxPgpassField {
			switch c := text[k]; {
			case pgpassEscape(text, k):
				k += 2
				continue
			case isSpace(c), isQuote(c), colon && c == ':':
				return k
			}
			k++
		}
		return k
	}
	for range 2 { // the database, the user
		e := read(k, true)
		if e == k || e >= len(text) || text[e] != ':' {
			return 0, 0, false
		}
		k = e + 1
	}
	e := read(k, !known)
	return k, e, e > k && e-k <= maxPgpassField && pgpassEnd(text, e)
}

func isQuote(c byte) bool { return c == '\'' || c == '"' }

// pgpassEnd reports whether a .pgpass line's password ends at text[e]: a
// quote, or blanks and the end of the line.
func pgpassEnd(text []byte, e int) bool {
	if e < len(text) && isQuote(text[e]) {
		return true
	}
	for k := e; k < len(text) && k-e <= maxPgpassField; k++ {
		switch text[k] {
		case ' ', '\t', '\r':
			continue
		case '\n':
			return true
		}
		return false
	}
	return len(text)-e <= maxPgpassField
}
