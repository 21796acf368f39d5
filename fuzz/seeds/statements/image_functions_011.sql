SELECT width('hello');
