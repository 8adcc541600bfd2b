# A Node-API addon that links libgreet, published as an OCI artifact, through ocipkg.
#   OCIPKG_EXAMPLE_IMAGE    the image to link (default: a registry on localhost:5000)
#   OCIPKG_EXAMPLE_LINKAGE  static (default) or shared
# Both forms the README recommends, neither of which can fetch code: ocipkg's CommonJS API through
# `node -p` (works however node-gyp is started), and `ocipkg-link` itself, found on the PATH npm
# sets for scripts (`npm install`, `npm run build`). Not `npx ocipkg-link`: see the README.
{
  "variables": {
    "greet_image": "<!(node -p \"process.env.OCIPKG_EXAMPLE_IMAGE || 'localhost:5000/examples/greet:1.2.0'\")",
    "greet_linkage": "<!(node -p \"process.env.OCIPKG_EXAMPLE_LINKAGE === 'shared' ? '--shared' : '--static'\")",
  },
  "targets": [
    {
      "target_name": "greet_addon",
      "sources": ["src/addon.cc"],
      # include_dirs+ puts these before the Node headers node-gyp adds, which ship their own
      # zlib.h, openssl/ and uv.h: a package of one of those must be compiled against its own.
      "include_dirs+": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node -p \"require('ocipkg').includeDirs('<(greet_image)')\")",
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      # Static: the archive's path. Shared: the library and an $ORIGIN (@loader_path) rpath, so
      # the addon finds the copy made beside it below; --for-make spells $ORIGIN for gyp's Makefile.
      "libraries": ["<!@(ocipkg-link --libs --for-make <(greet_linkage) <(greet_image))"],
      # Shared: the library goes beside the addon, where the rpath above finds it. gyp's own
      # "copies" would copy the store's symlinks as symlinks; ocipkg-link copies the files.
      "actions": [
        {
          "action_name": "copy_runtime_files",
          "inputs": ["<!@(ocipkg-link --runtime-files <(greet_linkage) <(greet_image))"],
          "outputs": ["<(PRODUCT_DIR)/ocipkg-runtime.stamp"],
          "action": ["ocipkg-link", "--copy-runtime-files=<(PRODUCT_DIR)", "<(greet_linkage)", "<(greet_image)"],
        }
      ],
    }
  ]
}
