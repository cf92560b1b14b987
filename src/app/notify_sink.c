/*
 * The four sinks of `canaryd notify`: request bodies in each API's shape, one libcurl transfer
 * per attempt, and the verdict on its answer (delivered, retry, refused).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/notify_sink.h"
#include "codec/event_json.h"
#include "codec/json.h"
#include "codec/rfc3339.h"

static const char *const sink_names[] = {
#define XX(name, wire) wire,
    NOTIFY_SINK_MAP(XX)
#undef XX
};

const char *notify_sink_name(enum notify_sink s) {
  return (unsigned)s < NOTIFY_SINK_COUNT ? sink_names[s] : "?";
}

/* ---- configuration ---------------------------------------------------------------------------- */

/* NAME or the content of the file NAME_FILE names; *out NULL when neither is set. */
static bool env_value(const char *name, char **out, char *why, size_t why_len) {
  char file_var[96];
  snprintf(file_var, sizeof file_var, "%s_FILE", name);
  const char *v = getenv(name), *path = getenv(file_var);
  *out = NULL;
  if (v && *v && path && *path) {
    snprintf(why, why_len, "both %s and %s are set: give one", name, file_var);
    return false;
  }
  if (v && *v) {
    *out = strdup(v);
    return *out != NULL;
  }
  if (!path || !*path)
    return true;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, why_len, "%s: %s: %s", file_var, path, strerror(errno));
    return false;
  }
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  bool too_long = !feof(f);
  fclose(f);
  if (too_long) {
    snprintf(why, why_len, "%s: %s: longer than %zu bytes", file_var, path, sizeof buf - 1);
    return false;
  }
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    n--;
  buf[n] = '\0';
  *out = strdup(buf);
  return *out != NULL;
}

bool notify_endpoints_from_env(struct notify_endpoints *ep, char *why, size_t why_len) {
  long timeout = ep->timeout_ms;
  memset(ep, 0, sizeof *ep);
  ep->timeout_ms = timeout > 0 ? timeout : 10000;
  struct {
    const char *name;
    char **dst;
  } vars[] = {
      {"CANARY_SLACK_WEBHOOK_URL", &ep->slack_url},
      {"CANARY_PAGERDUTY_URL", &ep->pagerduty_url},
      {"CANARY_PAGERDUTY_ROUTING_KEY", &ep->pagerduty_key},
      {"CANARY_STATUSPAGE_URL", &ep->statuspage_url},
      {"CANARY_STATUSPAGE_PAGE_ID", &ep->statuspage_page},
      {"CANARY_STATUSPAGE_API_KEY", &ep->statuspage_key},
      {"CANARY_SMTP_URL", &ep->smtp_url},
      {"CANARY_SMTP_FROM", &ep->smtp_from},
      {"CANARY_SMTP_TO", &ep->smtp_to},
      {"CANARY_SMTP_USER", &ep->smtp_user},
      {"CANARY_SMTP_PASSWORD", &ep->smtp_password},
  };
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (!env_value(vars[i].name, vars[i].dst, why, why_len)) {
      notify_endpoints_free(ep);
      return false;
    }
  /* the public APIs' addresses: only the secrets are needed to use them */
  if (!ep->pagerduty_url)
    ep->pagerduty_url = strdup("https://events.pagerduty.com/v2/enqueue");
  if (!ep->statuspage_url)
    ep->statuspage_url = strdup("https://api.statuspage.io");
  if (!ep->pagerduty_url || !ep->statuspage_url) {
    snprintf(why, why_len, "out of memory");
    notify_endpoints_free(ep);
    return false;
  }
  return true;
}

void notify_endpoints_free(struct notify_endpoints *ep) {
  char **all[] = {&ep->slack_url,      &ep->pagerduty_url,   &ep->pagerduty_key,
                  &ep->statuspage_url, &ep->statuspage_page, &ep->statuspage_key,
                  &ep->smtp_url,       &ep->smtp_from,       &ep->smtp_to,
                  &ep->smtp_user,      &ep->smtp_password};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    free(*all[i]);
    *all[i] = NULL;
  }
}

static bool set(const char *s) { return s && *s; }

bool notify_sink_configured(const struct notify_endpoints *ep, enum notify_sink s,
                            const char **needs) {
  const char *missing = NULL;
  switch (s) {
  case NOTIFY_SINK_SLACK:
    missing = set(ep->slack_url) ? NULL : "CANARY_SLACK_WEBHOOK_URL";
    break;
  case NOTIFY_SINK_PAGERDUTY:
    missing = set(ep->pagerduty_key) ? NULL : "CANARY_PAGERDUTY_ROUTING_KEY";
    break;
  case NOTIFY_SINK_STATUSPAGE:
    missing = !set(ep->statuspage_page)  ? "CANARY_STATUSPAGE_PAGE_ID"
              : !set(ep->statuspage_key) ? "CANARY_STATUSPAGE_API_KEY"
                                         : NULL;
    break;
  case NOTIFY_SINK_SMTP:
    missing = !set(ep->smtp_url)    ? "CANARY_SMTP_URL"
              : !set(ep->smtp_from) ? "CANARY_SMTP_FROM"
                                    : NULL;
    break;
  case NOTIFY_SINK_COUNT:
    missing = "?";
    break;
  }
  if (needs)
    *needs = missing;
  return !missing;
}

/* ---- bodies ------------------------------------------------------------------------------------- */

/* The commands people act with, for rollout r, as one mrkdwn line. */
static void commands(struct jbuf *b, const char *r) {
  static const char *const verbs[] = {"status", "history", "pause", "resume", "rollback"};
  jbuf_puts(b, "*To act:* ");
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
    jbuf_printf(b, "%s`canaryctl %s ", i ? " · " : "", verbs[i]);
    notification_mrkdwn(b, r, true);
    jbuf_putc(b, '`');
  }
}

/* One evidence value as text. */
static void evidence_value(struct jbuf *b, const struct evidence_item *e) {
  switch (e->kind) {
  case EVIDENCE_NUM:
    jbuf_printf(b, "%.6g", e->num);
    break;
  case EVIDENCE_INT:
    jbuf_printf(b, "%lld", (long long)e->i);
    break;
  case EVIDENCE_BOOL:
    jbuf_puts(b, e->b ? "true" : "false");
    break;
  case EVIDENCE_STR:
    jbuf_puts(b, e->str);
    break;
  }
}

/* The decision's evidence as sections of mrkdwn fields (Slack takes 10 fields a section). */
static void evidence_sections(struct jbuf *out, const struct decision *d) {
  struct jbuf v, f;
  jbuf_init(&v);
  jbuf_init(&f);
  for (int i = 0; i < d->n_evidence; i++) {
    if (i % 10 == 0)
      jbuf_puts(out, i ? "]},{\"type\":\"section\",\"fields\":["
                       : ",{\"type\":\"section\",\"fields\":[");
    jbuf_reset(&v);
    evidence_value(&v, &d->evidence[i]);
    jbuf_reset(&f);
    jbuf_putc(&f, '*');
    notification_mrkdwn(&f, d->evidence[i].key, false);
    jbuf_puts(&f, ":* ");
    jbuf_putc(&v, '\0');
    notification_mrkdwn(&f, v.data ? v.data : "", false);
    jbuf_puts(out, i % 10 ? ",{\"type\":\"mrkdwn\",\"text\":" : "{\"type\":\"mrkdwn\",\"text\":");
    jbuf_string_n(out, f.data ? f.data : "", f.len);
    jbuf_putc(out, '}');
  }
  if (d->n_evidence)
    jbuf_puts(out, "]}");
  jbuf_free(&v);
  jbuf_free(&f);
}

/*
 * The notification's own Block Kit payload (what the contract carries, ready for
 * chat.postMessage) with more sections: the evidence of the decision it reports (the measured
 * values, each criterion's result) and the commands to act. The payload is an object whose
 * last member is the blocks array (event_json.c writes it so): the section goes at its end.
 * Anything else is sent as it is.
 */
void notify_slack_body(const struct notify_item *it, struct jbuf *out) {
  const char *s = it->slack ? it->slack : "";
  size_t n = strlen(s);
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  if (n < 2 || strncmp(s + n - 2, "]}", 2) != 0 || !strstr(s, "\"blocks\":[")) {
    jbuf_write(out, s, n);
    return;
  }
  jbuf_write(out, s, n - 2);
  if (it->decision)
    evidence_sections(out, it->decision);
  struct jbuf line;
  jbuf_init(&line);
  commands(&line, it->n.rollout);
  jbuf_puts(out, ",{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":");
  jbuf_string_n(out, line.data ? line.data : "", line.len);
  jbuf_puts(out, "}}]}");
  jbuf_free(&line);
}

static const char *pd_severity(enum notify_severity s) {
  return s == NOTIFY_SEV_CRITICAL ? "critical" : s == NOTIFY_SEV_WARNING ? "warning" : "info";
}

void notify_pagerduty_body(const char *routing_key, enum notify_op op, const struct notify_item *it,
                           struct jbuf *out) {
  const struct notification *n = &it->n;
  jbuf_puts(out, "{\"routing_key\":");
  jbuf_string(out, routing_key ? routing_key : "");
  jbuf_puts(out, ",\"event_action\":");
  jbuf_string(out, op == NOTIFY_OP_RESOLVE ? "resolve" : "trigger");
  jbuf_puts(out, ",\"dedup_key\":"); /* one page per rollout: its resolve closes it */
  jbuf_string(out, n->rollout);
  if (op == NOTIFY_OP_RESOLVE) {
    jbuf_putc(out, '}');
    return;
  }
  char summary[1024], when[RFC3339_MAX], cmd[160];
  snprintf(summary, sizeof summary, "%s: %s", n->title, n->text); /* PagerDuty's limit: 1024 */
  snprintf(cmd, sizeof cmd, "canaryctl rollback %s", n->rollout);
  jbuf_puts(out, ",\"payload\":{\"summary\":");
  jbuf_string(out, summary);
  jbuf_puts(out, ",\"source\":\"canaryd\",\"severity\":");
  jbuf_string(out, pd_severity(n->severity));
  jbuf_puts(out, ",\"timestamp\":");
  jbuf_string(out, rfc3339_format(n->time_ms, when));
  jbuf_puts(out, ",\"component\":");
  jbuf_string(out, n->rollout);
  jbuf_puts(out, ",\"class\":\"canary_rollout\",\"custom_details\":{\"notification_id\":");
  jbuf_string(out, n->id);
  jbuf_puts(out, ",\"rollout\":");
  jbuf_string(out, n->rollout);
  jbuf_puts(out, ",\"text\":");
  jbuf_string(out, n->text);
  jbuf_puts(out, ",\"decision_id\":");
  jbuf_string(out, n->decision_id);
  jbuf_puts(out, ",\"to_roll_back\":");
  jbuf_string(out, cmd);
  if (it->decision && it->decision->n_evidence) {
    struct jbuf v;
    jbuf_init(&v);
    jbuf_puts(out, ",\"evidence\":{");
    for (int i = 0; i < it->decision->n_evidence; i++) {
      const struct evidence_item *e = &it->decision->evidence[i];
      if (i)
        jbuf_putc(out, ',');
      jbuf_string(out, e->key);
      jbuf_putc(out, ':');
      jbuf_reset(&v);
      evidence_value(&v, e);
      jbuf_string_n(out, v.data ? v.data : "", v.len);
    }
    jbuf_putc(out, '}');
    jbuf_free(&v);
  }
  jbuf_puts(out, "}},\"client\":\"canaryd\"}");
}

void notify_statuspage_body(enum notify_op op, const struct notify_item *it, struct jbuf *out) {
  const struct notification *n = &it->n;
  jbuf_puts(out, "{\"incident\":{");
  if (op == NOTIFY_OP_CREATE) {
    jbuf_puts(out, "\"name\":");
    jbuf_string(out, n->title);
    jbuf_puts(out, ",\"impact_override\":");
    jbuf_string(out, n->severity == NOTIFY_SEV_CRITICAL ? "critical" : "major");
    jbuf_putc(out, ',');
  }
  jbuf_puts(out, "\"status\":");
  jbuf_string(out, op == NOTIFY_OP_RESOLVE ? "resolved" : "investigating");
  jbuf_puts(out, ",\"body\":");
  jbuf_string(out, n->text);
  jbuf_puts(out, ",\"deliver_notifications\":true,\"metadata\":{\"canaryd\":{\"rollout\":");
  jbuf_string(out, n->rollout);
  jbuf_puts(out, ",\"notification_id\":");
  jbuf_string(out, n->id);
  jbuf_puts(out, "}}}}");
}

/* A header value: control characters (CR, LF above all) become spaces. */
static void header_text(struct jbuf *b, const char *s) {
  for (; *s; s++)
    jbuf_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

/* The body as CRLF lines. */
static void crlf_text(struct jbuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\r')
      continue;
    if (*s == '\n')
      jbuf_puts(b, "\r\n");
    else
      jbuf_putc(b, *s);
  }
}

/* RFC 2047: a Subject with bytes beyond ASCII as one UTF-8 base64 encoded-word. */
static void subject(struct jbuf *b, const char *s) {
  bool ascii = true;
  for (const char *p = s; *p; p++)
    ascii &= (unsigned char)*p < 0x80;
  if (ascii) {
    header_text(b, s);
    return;
  }
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t n = strlen(s);
  jbuf_puts(b, "=?UTF-8?B?");
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned char)s[i] << 16;
    if (i + 1 < n)
      v |= (unsigned char)s[i + 1] << 8;
    if (i + 2 < n)
      v |= (unsigned char)s[i + 2];
    jbuf_putc(b, tbl[(v >> 18) & 63]);
    jbuf_putc(b, tbl[(v >> 12) & 63]);
    jbuf_putc(b, i + 1 < n ? tbl[(v >> 6) & 63] : '=');
    jbuf_putc(b, i + 2 < n ? tbl[v & 63] : '=');
  }
  jbuf_puts(b, "?=");
}

void notify_mail_message(const struct notify_endpoints *ep, const char *to,
                         const struct notify_item *it, int64_t now_ms, struct jbuf *out) {
  const struct notification *n = &it->n;
  char date[64], when[RFC3339_MAX];
  time_t t = (time_t)(now_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  jbuf_printf(out, "Date: %s\r\nFrom: ", date);
  header_text(out, ep->smtp_from ? ep->smtp_from : "");
  jbuf_puts(out, "\r\nTo: ");
  header_text(out, to);
  jbuf_puts(out, "\r\nSubject: ");
  char subj[PLAN_TEXT_MAX + 16];
  snprintf(subj, sizeof subj, "[canaryd] %s", n->title);
  subject(out, subj);
  /* the notification's id, so a mail system (or a person) can tell a copy from a new message */
  jbuf_puts(out, "\r\nMessage-ID: <");
  for (const char *p = n->id; *p; p++)
    jbuf_putc(out, isalnum((unsigned char)*p) || strchr(".-_", *p) ? *p : '.');
  jbuf_puts(out, "@canaryd>\r\nX-Canary-Notification-Id: ");
  header_text(out, n->id);
  jbuf_puts(out, "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n\r\n");
  crlf_text(out, n->title);
  jbuf_puts(out, "\r\n\r\n");
  crlf_text(out, n->text);
  jbuf_printf(out, "\r\n\r\nRollout: %s\r\nSeverity: %s\r\nTime: %s\r\n", n->rollout,
              notify_severity_name(n->severity), rfc3339_format(n->time_ms, when));
  if (n->decision_id[0])
    jbuf_printf(out, "Decision: %s\r\n", n->decision_id);
  jbuf_printf(out, "\r\nTo see it: canaryctl status %s\r\nTo roll back: canaryctl rollback %s\r\n",
              n->rollout, n->rollout);
}

/* ---- transfers ---------------------------------------------------------------------------------- */

struct reply {
  struct jbuf body;
  int64_t retry_after_ms;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
  struct reply *r = ctx;
  if (r->body.len < 16384) /* enough for an id or an error; the rest is not kept */
    jbuf_write(&r->body, p, size * n);
  return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
  struct reply *r = ctx;
  size_t len = size * n;
  static const char name[] = "retry-after:";
  if (len > sizeof name - 1 && !strncasecmp(p, name, sizeof name - 1)) {
    char v[128];
    size_t k = len - (sizeof name - 1);
    if (k >= sizeof v)
      k = sizeof v - 1;
    memcpy(v, p + sizeof name - 1, k);
    v[k] = '\0';
    char *s = v;
    while (*s == ' ' || *s == '\t')
      s++;
    s[strcspn(s, "\r\n")] = '\0';
    char *end;
    long secs = strtol(s, &end, 10);
    if (end != s && *end == '\0' && secs >= 0) {
      r->retry_after_ms = (int64_t)secs * 1000;
    } else { /* an HTTP-date */
      time_t at = curl_getdate(s, NULL);
      if (at != -1) {
        int64_t d = ((int64_t)at - (int64_t)time(NULL)) * 1000;
        r->retry_after_ms = d > 0 ? d : 0;
      }
    }
  }
  return len;
}

/* The first part of a reply body, one line, for the record. */
static void excerpt(const struct jbuf *b, char *dst, size_t len) {
  size_t k = 0;
  for (size_t i = 0; b->data && i < b->len && k + 1 < len && k < 200; i++)
    dst[k++] = (unsigned char)b->data[i] < 0x20 ? ' ' : b->data[i];
  dst[k] = '\0';
}

/* The verdict on an HTTP answer (or on no answer). */
static void judge_http(CURLcode cc, long status, const char *errbuf, const struct reply *rep,
                       const char *what, struct notify_result *res) {
  char body[256];
  excerpt(&rep->body, body, sizeof body);
  res->status = status;
  res->retry_after_ms = rep->retry_after_ms;
  if (cc != CURLE_OK) {
    res->verdict = NOTIFY_RETRY;
    snprintf(res->detail, sizeof res->detail, "%s: %s", what,
             errbuf[0] ? errbuf : curl_easy_strerror(cc));
  } else if (status >= 200 && status < 300) {
    res->verdict = NOTIFY_DELIVERED;
    snprintf(res->detail, sizeof res->detail, "%s: HTTP %ld", what, status);
  } else {
    /* 408 and 429 ask to come back later; 5xx is the sink's trouble, not the message's */
    res->verdict = status == 408 || status == 429 || status >= 500 ? NOTIFY_RETRY : NOTIFY_REFUSED;
    snprintf(res->detail, sizeof res->detail, "%s: HTTP %ld%s%s", what, status, body[0] ? ": " : "",
             body);
  }
}

static CURL *easy(const struct notify_endpoints *ep, struct reply *rep, char *errbuf) {
  CURL *c = curl_easy_init();
  if (!c)
    return NULL;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ep->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ep->timeout_ms < 5000 ? ep->timeout_ms : 5000L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, rep);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, rep);
  /* an endpoint is an address, not a place to be sent on from: no redirects */
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "canaryd-notify/" CANARY_VERSION);
  return c;
}

static void http(const struct notify_endpoints *ep, const char *method, const char *url,
                 const char *auth, const struct notify_item *it, const struct jbuf *body,
                 const char *what, struct notify_result *res) {
  char errbuf[CURL_ERROR_SIZE] = "";
  struct reply rep = {.retry_after_ms = -1};
  jbuf_init(&rep.body);
  CURL *c = easy(ep, &rep, errbuf);
  struct curl_slist *h = NULL;
  char idh[EVENT_NAME_MAX + 64];
  snprintf(idh, sizeof idh, "X-Canary-Notification-Id: %s", it->n.id);
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, idh);
  if (auth)
    h = curl_slist_append(h, auth);
  if (!c || !h || body->oom) {
    res->verdict = NOTIFY_RETRY;
    snprintf(res->detail, sizeof res->detail, "%s: out of memory", what);
  } else {
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data ? body->data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    judge_http(cc, status, errbuf, &rep, what, res);
    if (res->verdict == NOTIFY_DELIVERED && rep.body.len) { /* statuspage: the incident's id */
      struct json_doc doc;
      const struct json_value *root, *id;
      json_doc_init(&doc);
      if (json_parse(&doc, rep.body.data, rep.body.len, &root, NULL) == CANARY_OK &&
          (id = json_get(root, "id")) && id->type == JSON_STRING)
        snprintf(res->remote_id, sizeof res->remote_id, "%s", id->str);
      json_doc_free(&doc);
    }
  }
  curl_slist_free_all(h);
  if (c)
    curl_easy_cleanup(c);
  jbuf_free(&rep.body);
}

struct upload {
  const char *data;
  size_t len, at;
};

static size_t on_read(char *p, size_t size, size_t n, void *ctx) {
  struct upload *u = ctx;
  size_t k = size * n;
  if (k > u->len - u->at)
    k = u->len - u->at;
  memcpy(p, u->data + u->at, k);
  u->at += k;
  return k;
}

static void smtp(const struct notify_endpoints *ep, const struct notify_item *it,
                 struct notify_result *res) {
  const char *to = set(ep->smtp_to) ? ep->smtp_to : it->n.target;
  if (!strchr(to, '@')) {
    res->verdict = NOTIFY_REFUSED;
    snprintf(res->detail, sizeof res->detail,
             "smtp: no recipient: the channel '%s' is not an address and CANARY_SMTP_TO is unset",
             to);
    return;
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  struct reply rep = {.retry_after_ms = -1};
  jbuf_init(&rep.body);
  struct jbuf msg;
  jbuf_init(&msg);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  notify_mail_message(ep, to, it, (int64_t)ts.tv_sec * 1000, &msg);
  struct curl_slist *rcpt = NULL;
  char *list = strdup(to), *save = NULL;
  for (char *a = list ? strtok_r(list, ",", &save) : NULL; a; a = strtok_r(NULL, ",", &save)) {
    while (*a == ' ')
      a++;
    char br[320];
    snprintf(br, sizeof br, "<%s>", a);
    rcpt = curl_slist_append(rcpt, br);
  }
  free(list);
  char from[320];
  snprintf(from, sizeof from, "<%s>", ep->smtp_from);
  CURL *c = easy(ep, &rep, errbuf);
  if (!c || !rcpt || msg.oom) {
    res->verdict = NOTIFY_RETRY;
    snprintf(res->detail, sizeof res->detail, "smtp: out of memory");
  } else {
    struct upload up = {msg.data, msg.len, 0};
    curl_easy_setopt(c, CURLOPT_URL, ep->smtp_url);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    if (set(ep->smtp_user)) {
      curl_easy_setopt(c, CURLOPT_USERNAME, ep->smtp_user);
      curl_easy_setopt(c, CURLOPT_PASSWORD, ep->smtp_password ? ep->smtp_password : "");
    }
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    res->status = code;
    res->retry_after_ms = -1;
    if (cc == CURLE_OK) {
      res->verdict = NOTIFY_DELIVERED;
      snprintf(res->detail, sizeof res->detail, "smtp: %ld accepted", code);
    } else {
      /* 5xx is the server's final no (a bad recipient, a refused sender); 4xx and no answer
       * at all are worth another try */
      res->verdict = code >= 500 && code < 600 ? NOTIFY_REFUSED : NOTIFY_RETRY;
      snprintf(res->detail, sizeof res->detail, "smtp: %s%s%ld",
               errbuf[0] ? errbuf : curl_easy_strerror(cc), code ? ", reply " : "", code);
    }
  }
  curl_slist_free_all(rcpt);
  if (c)
    curl_easy_cleanup(c);
  jbuf_free(&msg);
  jbuf_free(&rep.body);
}

void notify_deliver(const struct notify_endpoints *ep, enum notify_sink sink, enum notify_op op,
                    const struct notify_item *it, const char *remote_id,
                    struct notify_result *res) {
  memset(res, 0, sizeof *res);
  res->retry_after_ms = -1;
  struct jbuf body;
  jbuf_init(&body);
  char url[1024], auth[512];
  switch (sink) {
  case NOTIFY_SINK_SLACK:
    notify_slack_body(it, &body);
    http(ep, "POST", ep->slack_url, NULL, it, &body, "slack", res);
    break;
  case NOTIFY_SINK_PAGERDUTY:
    notify_pagerduty_body(ep->pagerduty_key, op, it, &body);
    http(ep, "POST", ep->pagerduty_url, NULL, it, &body, "pagerduty", res);
    break;
  case NOTIFY_SINK_STATUSPAGE: {
    const char *base = ep->statuspage_url;
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
      bl--;
    if (op == NOTIFY_OP_CREATE)
      snprintf(url, sizeof url, "%.*s/v1/pages/%s/incidents", (int)bl, base, ep->statuspage_page);
    else
      snprintf(url, sizeof url, "%.*s/v1/pages/%s/incidents/%s", (int)bl, base, ep->statuspage_page,
               remote_id ? remote_id : "");
    snprintf(auth, sizeof auth, "Authorization: OAuth %s", ep->statuspage_key);
    notify_statuspage_body(op, it, &body);
    http(ep, op == NOTIFY_OP_CREATE ? "POST" : "PATCH", url, auth, it, &body, "statuspage", res);
    break;
  }
  case NOTIFY_SINK_SMTP:
    smtp(ep, it, res);
    break;
  case NOTIFY_SINK_COUNT:
    res->verdict = NOTIFY_REFUSED;
    snprintf(res->detail, sizeof res->detail, "no such sink");
    break;
  }
  jbuf_free(&body);
}
