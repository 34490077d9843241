/* sa_proto.h over jansson (Debian's libjansson), so escaping and UTF-8 checks are not ours to get wrong. */
#include "sa_proto.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static sa_msg_type_t fail(sa_msg_t *out, sa_msg_type_t type, const char *why)
{
    out->type = type;
    snprintf(out->error, sizeof(out->error), "%s", why);
    return type;
}

sa_msg_type_t sa_proto_parse(const char *text, size_t len, sa_msg_t *out)
{
    if (!out) return SA_MSG_INVALID;
    memset(out, 0, sizeof(*out));
    if (!text) return fail(out, SA_MSG_INVALID, "no text");
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return fail(out, SA_MSG_INVALID, "not valid JSON");
    sa_msg_type_t rc;
    const char *type = json_string_value(json_object_get(root, "type"));
    if (!json_is_object(root)) {
        rc = fail(out, SA_MSG_INVALID, "not a JSON object");
    } else if (!type) {
        rc = fail(out, SA_MSG_INVALID, "field 'type' missing or not a string");
    } else if (strcmp(type, "clear") == 0) {
        rc = out->type = SA_MSG_CLEAR;
    } else if (strcmp(type, "pause") == 0) {
        rc = out->type = SA_MSG_PAUSE;
    } else if (strcmp(type, "resume") == 0) {
        rc = out->type = SA_MSG_RESUME;
    } else if (strcmp(type, "mark") == 0) {
        json_t *name = json_object_get(root, "name");
        if (!json_is_string(name)) {
            rc = fail(out, SA_MSG_INVALID, "mark: field 'name' missing or not a string");
        } else if (json_string_length(name) >= SA_MARK_NAME_MAX) {
            rc = fail(out, SA_MSG_INVALID, "mark: field 'name' longer than 255 bytes");
        } else if (strlen(json_string_value(name)) != json_string_length(name)) {
            rc = fail(out, SA_MSG_INVALID, "mark: field 'name' contains a NUL character");
        } else {
            memcpy(out->name, json_string_value(name), json_string_length(name) + 1);
            rc = out->type = SA_MSG_MARK;
        }
    } else {
        char why[96];
        snprintf(why, sizeof(why), "unknown type '%.60s'", type);
        rc = fail(out, SA_MSG_UNKNOWN, why);
    }
    json_decref(root);
    return rc;
}

static char *dump(json_t *obj)
{
    if (!obj) return NULL;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s;
}

char *sa_proto_start(const char *uuid, unsigned sample_rate)
{
    if (!uuid || !*uuid || sample_rate == 0) return NULL;
    return dump(json_pack("{s:s, s:s, s:I, s:s, s:i}", "type", "start", "uuid", uuid, "sample_rate",
                          (json_int_t)sample_rate, "encoding", "L16", "channels", 1));
}

char *sa_proto_mark_report(const char *name, sa_mark_event_t event)
{
    if (!name) return NULL;
    if (event != SA_MARK_PLAYED && event != SA_MARK_CLEARED) return NULL;
    return dump(json_pack("{s:s, s:s, s:s}", "type", "mark", "name", name, "event",
                          event == SA_MARK_PLAYED ? "played" : "cleared"));
}

char *sa_proto_stats(double buffered_ms, uint64_t underruns)
{
    if (buffered_ms < 0) return NULL;
    return dump(json_pack("{s:s, s:f, s:I}", "type", "stats", "buffered_ms", buffered_ms, "underruns",
                          (json_int_t)underruns));
}
