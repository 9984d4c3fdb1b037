/**
 * A ref that focuses an element when it is inserted. Preact's autoFocus sets the HTML attribute,
 * which browsers honour only for the first element at page load, not for parts rendered later.
 */
export const focusOnMount = (el: HTMLElement | null): void => el?.focus();
