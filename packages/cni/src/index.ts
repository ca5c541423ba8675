/** @cnikit/cni — see package.json description. */
export const PACKAGE_NAME = "@cnikit/cni";
