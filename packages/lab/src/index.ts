/** @cnikit/lab — see package.json description. */
export const PACKAGE_NAME = "@cnikit/lab";
