// libFuzzer target: the model folder's JSON files. The first byte selects the parser, the rest
// is the file: 0 unet/config.json, 1 vae/config.json, 2 text_encoder/config.json, 3
// scheduler/scheduler_config.json (and a scheduler built from it).
#include "fuzz_util.h"

#include "model/clip.h"
#include "model/unet.h"
#include "model/vae.h"
#include "sched/sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int which = data[0] % 4;
    data++;
    size--;
    char *json = fuzz_str(data, size);
    char desc[512];
    switch (which) {
    case 0: {
        df_unet_config c;
        df_status st = df_unet_config_from_json(fuzz_file(data, size), &c);
        fuzz_check_status(st);
        if (st == DF_OK) df_unet_config_describe(&c, desc, sizeof desc);
        break;
    }
    case 1: {
        df_vae_config c;
        fuzz_check_status(df_vae_config_parse(json, "fuzz vae", &c));
        break;
    }
    case 2: {
        df_clip_config c;
        fuzz_check_status(df_clip_config_parse(json, "fuzz clip", &c));
        break;
    }
    default: {
        df_sched_config c;
        df_sched_kind kind = DF_SCHED_NONE;
        df_sched_config_init(&c);
        df_status st = df_sched_config_parse_json(json, "fuzz scheduler", &c, &kind);
        fuzz_check_status(st);
        if (st == DF_OK) {
            df_sched *s = NULL;
            st = df_sched_create(kind == DF_SCHED_NONE ? DF_SCHED_EULER : kind, &c, 4, 16, &s);
            fuzz_check_status(st);
            df_sched_destroy(s);
        }
        break;
    }
    }
    free(json);
    return 0;
}
