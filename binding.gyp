{
  "targets": [
    {
      "target_name": "n2disk",
      "sources": [
        "native/addon.cc",
        "native/filter.cc",
        "native/recorder.cc",
        "native/chunker.cc",
        "native/source_ring.cc",
        "native/source_file.cc",
        "native/parse.cc", "native/pcap_meta.cc",
        "native/writer.cc",
        "native/identity.cc",
        "native/index_builder.cc", "native/index_encode.cc", "native/index_builder_addon.cc",
        "native/flatbuf.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"],
      "libraries": ["-lpcap", "-lisal", "-lpthread"]
    }
  ]
}
