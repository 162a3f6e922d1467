package doctor

import "strings"

// service is a daemon whose worker count an administrator can lower, and
// how. The stories of docs/stories.md all ended this way: Postfix's
// default_process_limit, inetd-started imapd, Apache's child count.
type service struct {
	name  string
	comms []string // exact comm values (a comm is at most 15 bytes)
	fix   []string // lines for Finding.Fix: picket's words only, never a comm
}

var services = []service{
	{"postfix", []string{"master", "smtpd", "smtp", "qmgr", "pickup", "cleanup", "trivial-rewrite", "local", "virtual",
		"anvil", "tlsmgr", "proxymap", "scache", "bounce", "showq", "lmtp", "postscreen", "verify", "flush"},
		[]string{"# Postfix: every smtpd/smtp/cleanup worker holds its own sockets; cap them all (the default is 100 each):",
			"postconf -e default_process_limit=10", "postfix reload"}},
	{"apache", []string{"apache2", "httpd", "httpd-prefork", "httpd-worker"},
		[]string{"# Apache: lower MaxRequestWorkers (MaxClients before 2.4) so children × their RSS fit in RAM,",
			"# then restart (a graceful reload does not apply MPM limits): apachectl -k restart"}},
	{"php-fpm", []string{"php-fpm", "php-fpm7", "php-fpm8", "php-fpm7.4", "php-fpm8.1", "php-fpm8.2", "php-fpm8.3", "php-fpm8.4"},
		[]string{"# PHP-FPM: lower pm.max_children in the pool's .conf, then reload php-fpm"}},
	{"dovecot", []string{"dovecot", "imap", "imap-login", "pop3", "pop3-login", "auth", "lmtp"},
		[]string{"# Dovecot: lower default_process_limit, or service imap { process_limit } in dovecot.conf; then: doveadm reload"}},
	{"imapd", []string{"imapd", "ipop3d", "pop3d", "in.imapd"},
		[]string{"# inetd-started imapd: cap instances in xinetd (instances = 60, per_source = 10), then reload xinetd"}},
	{"mysql", []string{"mysqld", "mariadbd"},
		[]string{"# MySQL/MariaDB: lower max_connections (each connection is a thread with its own buffers)"}},
	{"nginx", []string{"nginx"},
		[]string{"# nginx: worker_processes and worker_connections bound its sockets; check for upstream keepalive leaks"}},
}

// serviceFix returns the fix lines of the known services among comms, each
// service once, in the order of the services table.
func serviceFix(comms ...string) []string {
	var out []string
	for _, s := range services {
		if matchesService(s, comms) {
			out = append(out, s.fix...)
		}
	}
	return out
}

func matchesService(s service, comms []string) bool {
	for _, c := range comms {
		for _, sc := range s.comms {
			if c == sc || (s.name == "php-fpm" && strings.HasPrefix(c, "php-fpm")) {
				return true
			}
		}
	}
	return false
}
