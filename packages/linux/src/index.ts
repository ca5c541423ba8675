/** @cnikit/linux — see package.json description. */
export const PACKAGE_NAME = "@cnikit/linux";
