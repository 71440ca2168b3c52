/* tests/unit/protocol/test_corpus.c: the fuzzers' seed frames, encoded by hand in
 * tests/fuzz/make_corpus.py independently of the C codec, decode whole and clean (the seed
 * named amqp_0_8 as AMQP 0-8, spec08.h). */
#include <dirent.h>
#include <stdio.h>
#include "helpers.h"
#include "frame.h"
#include "spec.h"
#include "spec08.h"

#define FUZZ_CONTROL_BYTES 2 /* fuzz_frame's frame_max choice and split seed */

static const char *corpus_dir;

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    size_t len = fread(buf, 1, cap, file);
    assert_true(len < cap);
    fclose(file);
    return len;
}

static void every_seed_frame_decodes(void **state)
{
    (void)state;
    static uint8_t buf[65536];
    DIR *dir = opendir(corpus_dir);
    struct dirent *entry;
    size_t methods = 0, headers = 0;

    assert_non_null(dir);
    while ((entry = readdir(dir)) != NULL) {
        char path[4096];
        if (entry->d_name[0] == '.' || strcmp(entry->d_name, "protocol_header") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", corpus_dir, entry->d_name);
        size_t len = read_file(path, buf, sizeof(buf)), pos = FUZZ_CONTROL_BYTES;
        bool amqp_0_8 = strcmp(entry->d_name, "amqp_0_8") == 0;
        while (pos < len) {
            struct frame frame;
            long n = frame_decode(buf + pos, len - pos, 131072, &frame);
            if (n <= 0)
                fail_msg("%s at %zu: %s", entry->d_name, pos, proto_strerror((int)n));
            if (frame.type == FRAME_METHOD) {
                struct spec_method m;
                int rc = amqp_0_8 ? spec08_method_decode(frame.payload, frame.size, &m)
                                  : spec_method_decode(frame.payload, frame.size, &m);
                if (rc != 0)
                    fail_msg("%s at %zu: %s", entry->d_name, pos, proto_strerror(rc));
                methods++;
            } else if (frame.type == FRAME_HEADER) {
                struct spec_content_header h;
                assert_int_equal(spec_content_header_decode(frame.payload, frame.size, &h), 0);
                headers++;
            }
            pos += (size_t)n;
        }
    }
    closedir(dir);
    assert_true(methods >= 20);
    assert_true(headers >= 2);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_seed_frame_decodes),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    corpus_dir = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
