/* Protocol messages, API argument parsing and websocket URL parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sa_args.h"
#include "sa_proto.h"
#include "sa_ws.h"

static sa_msg_type_t parse(const char *s, sa_msg_t *m) { return sa_proto_parse(s, strlen(s), m); }

static void parses_clear_and_mark(void **state)
{
    (void)state;
    sa_msg_t m;
    assert_int_equal(parse("{\"type\":\"clear\"}", &m), SA_MSG_CLEAR);
    assert_int_equal(parse("{\"type\":\"mark\",\"name\":\"turn-3/clause-1 \\u00e9\"}", &m), SA_MSG_MARK);
    assert_string_equal(m.name, "turn-3/clause-1 \xc3\xa9");
    assert_int_equal(parse("{\"type\":\"pause\"}", &m), SA_MSG_PAUSE);
    assert_int_equal(parse("{\"type\":\"resume\",\"why\":\"cough\"}", &m), SA_MSG_RESUME); /* extra fields: fine */
    assert_int_equal(parse("{\"type\":\"Pause\"}", &m), SA_MSG_UNKNOWN);
}

static void rejects_malformed_naming_the_field(void **state)
{
    (void)state;
    sa_msg_t m;
    assert_int_equal(parse("not json", &m), SA_MSG_INVALID);
    assert_int_equal(parse("[1]", &m), SA_MSG_INVALID);
    assert_int_equal(parse("{\"name\":\"x\"}", &m), SA_MSG_INVALID);
    assert_non_null(strstr(m.error, "type"));
    assert_int_equal(parse("{\"type\":\"mark\"}", &m), SA_MSG_INVALID);
    assert_non_null(strstr(m.error, "name"));
    assert_int_equal(parse("{\"type\":\"mark\",\"name\":7}", &m), SA_MSG_INVALID);
    assert_int_equal(parse("{\"type\":\"mark\",\"name\":\"a\\u0000b\"}", &m), SA_MSG_INVALID);
    char big[400];
    memset(big, 'x', sizeof(big));
    strcpy(big, "{\"type\":\"mark\",\"name\":\"");
    memset(big + strlen(big), 'n', 300);
    strcpy(big + 23 + 300, "\"}");
    assert_int_equal(parse(big, &m), SA_MSG_INVALID);
    assert_non_null(strstr(m.error, "255"));
    assert_int_equal(parse("{\"type\":\"dance\"}", &m), SA_MSG_UNKNOWN);
    assert_int_equal(sa_proto_parse(NULL, 0, &m), SA_MSG_INVALID);
}

static json_t *load(char *s)
{
    assert_non_null(s);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(j);
    return j;
}

static void builds_uplink_messages(void **state)
{
    (void)state;
    json_t *j = load(sa_proto_start("abc-1", 16000));
    assert_string_equal(json_string_value(json_object_get(j, "type")), "start");
    assert_string_equal(json_string_value(json_object_get(j, "uuid")), "abc-1");
    assert_int_equal(json_integer_value(json_object_get(j, "sample_rate")), 16000);
    assert_string_equal(json_string_value(json_object_get(j, "encoding")), "L16");
    assert_int_equal(json_integer_value(json_object_get(j, "channels")), 1);
    json_decref(j);
    j = load(sa_proto_mark_report("q\"uote", SA_MARK_CLEARED));
    assert_string_equal(json_string_value(json_object_get(j, "name")), "q\"uote");
    assert_string_equal(json_string_value(json_object_get(j, "event")), "cleared");
    json_decref(j);
    j = load(sa_proto_stats(40.0, 3));
    assert_true(json_real_value(json_object_get(j, "buffered_ms")) == 40.0);
    assert_int_equal(json_integer_value(json_object_get(j, "underruns")), 3);
    json_decref(j);
    assert_null(sa_proto_start("", 8000));
    assert_null(sa_proto_stats(-1, 0));
}

static void expect_error(const char *cmd, const char *field)
{
    sa_args_t a;
    char err[256] = "";
    assert_int_equal(sa_args_parse(cmd, &a, err, sizeof(err)), -1);
    if (!strstr(err, field)) fail_msg("'%s': error '%s' does not name '%s'", cmd, err, field);
}

static void parses_api_arguments_strictly(void **state)
{
    (void)state;
    sa_args_t a;
    char err[256];
    assert_int_equal(sa_args_parse("u-1 start ws://10.0.0.5:8080/v1/calls/u-1/audio 16000 tok.en_1", &a, err,
                                   sizeof(err)), 0);
    assert_int_equal(a.cmd, SA_CMD_START);
    assert_string_equal(a.uuid, "u-1");
    assert_string_equal(a.url, "ws://10.0.0.5:8080/v1/calls/u-1/audio");
    assert_int_equal(a.rate, 16000);
    assert_string_equal(a.token, "tok.en_1");
    assert_int_equal(sa_args_parse("  u-1   stop ", &a, err, sizeof(err)), 0);
    assert_int_equal(a.cmd, SA_CMD_STOP);
    assert_int_equal(sa_args_parse("u-1 clear", &a, err, sizeof(err)), 0);
    assert_int_equal(a.cmd, SA_CMD_CLEAR);
    assert_int_equal(sa_args_parse("u-1 pause", &a, err, sizeof(err)), 0);
    assert_int_equal(a.cmd, SA_CMD_PAUSE);
    assert_int_equal(sa_args_parse("u-1 resume", &a, err, sizeof(err)), 0);
    assert_int_equal(a.cmd, SA_CMD_RESUME);
    expect_error("u-1 pause 5", "extra");
    expect_error("", "usage");
    expect_error("u;1 stop", "uuid");
    expect_error("u-1", "command");
    expect_error("u-1 play", "command");
    expect_error("u-1 start", "ws-url");
    expect_error("u-1 start http://x/ 8000 t", "url");
    expect_error("u-1 start ws://x/ 44100 t", "rate");
    expect_error("u-1 start ws://x/ 8000", "token");
    expect_error("u-1 start ws://x/ 8000 t\"x", "token");
    expect_error("u-1 start ws://x/ 8000 t extra", "extra");
    expect_error("u-1 stop now", "extra");
    expect_error("u-1 stop\r\nX: y", "line break");
}

static void parses_urls(void **state)
{
    (void)state;
    sa_ws_url_t u;
    char err[128];
    assert_int_equal(sa_ws_parse_url("ws://agent:8080/v1/calls/x/audio", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "agent");
    assert_int_equal(u.port, 8080);
    assert_int_equal(u.tls, 0);
    assert_string_equal(u.path, "/v1/calls/x/audio");
    assert_int_equal(sa_ws_parse_url("wss://[::1]/a?b=c", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/a?b=c");
    assert_int_equal(sa_ws_parse_url("ws://h", &u, err, sizeof(err)), 0);
    assert_string_equal(u.path, "/");
    assert_int_equal(sa_ws_parse_url("ws://h:0/", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "port"));
    assert_int_equal(sa_ws_parse_url("ws://h:99999/", &u, err, sizeof(err)), -1);
    assert_int_equal(sa_ws_parse_url("ws://:80/", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "host"));
    assert_int_equal(sa_ws_parse_url("ws://h/a b", &u, err, sizeof(err)), -1);
    assert_int_equal(sa_ws_parse_url("ws://h/#frag", &u, err, sizeof(err)), -1);
    assert_int_equal(sa_ws_parse_url("tcp://h/", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "scheme"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_clear_and_mark),
        cmocka_unit_test(rejects_malformed_naming_the_field),
        cmocka_unit_test(builds_uplink_messages),
        cmocka_unit_test(parses_api_arguments_strictly),
        cmocka_unit_test(parses_urls),
    };
    return cmocka_run_group_tests_name("proto_args", tests, NULL, NULL);
}
